from openwen.cli.main import app

app()
