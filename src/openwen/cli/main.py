"""The ``openwen`` command: a thin layer over the library."""

from __future__ import annotations

import json
import logging
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from openwen import __version__
from openwen.cli.common import fail_on_errors
from openwen.config import load_settings

app = typer.Typer(
    name="openwen",
    help="A local-first personal AI assistant on open-weight models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False
         ) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


@app.command()
def version() -> None:
    """Print the openwen version."""
    typer.echo(f"openwen {__version__}")


@app.command()
def config(as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False
           ) -> None:
    """Print the effective settings and where each came from (env > file > default)."""
    with fail_on_errors():
        loaded = load_settings()
    rows = []
    for name, value in loaded.settings.model_dump().items():
        secret = ("key" in name or "token" in name or name == "mcp") and bool(value)
        shown = "********" if secret else value
        rows.append((name, "" if shown is None else str(shown), loaded.sources[name]))
    if as_json:
        typer.echo(json.dumps({n: {"value": v, "source": s} for n, v, s in rows}, indent=2))
        return
    table = Table(title=f"openwen settings (config file: {loaded.config_file})")
    for col in ("setting", "value", "source"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def _register() -> None:
    from openwen.cli import chat_cmd, docs_cmd, models_cmd, tools_cmd, tune_cmd

    chat_cmd.register(app)
    docs_cmd.register(app)
    models_cmd.register(app)
    tools_cmd.register(app)
    tune_cmd.register(app)
    try:
        from openwen.cli import serve_cmd
    except ImportError:  # the server is optional while it is being built
        return
    serve_cmd.register(app)


_register()
