"""``openwen tools list`` and ``openwen tools run`` (the command group from cli/tools_cmd.py)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from openwen.cli import tools_cmd

DEMO = str(Path(__file__).parent / "fixtures" / "mcp_demo_server.py")


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """openwen (test harness)."""

    tools_cmd.register(app)
    return app


def invoke(app: typer.Typer, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_list_as_json_shows_schemas_and_sources(cli: typer.Typer) -> None:
    code, out, _ = invoke(cli, "tools", "list", "--json")
    assert code == 0
    data = json.loads(out)
    tools = {t["name"]: t for t in data["tools"]}
    assert {"calculator", "current_datetime", "run_python", "list_files", "read_file",
            "write_file", "fetch_url"} <= set(tools)
    assert tools["calculator"]["source"] == "builtin"
    assert tools["calculator"]["parameters"]["required"] == ["expression"]
    assert tools["write_file"]["side_effects"] is True
    assert data["problems"] == {}


def test_list_as_a_table(cli: typer.Typer) -> None:
    code, out, _ = invoke(cli, "tools", "list")
    assert code == 0 and "calculator" in out and "builtin" in out and "expression" in out


def test_run_prints_the_result(cli: typer.Typer) -> None:
    code, out, _ = invoke(cli, "tools", "run", "calculator", '{"expression": "6*7"}')
    assert (code, out) == (0, "42\n")


@pytest.mark.parametrize(("args", "message"), [
    (["calculator", "{oops"], "not valid JSON"),
    (["calculator", "[1]"], "must be a JSON object"),
    (["calculator", '{"expression": "1/0"}'], "division by zero"),
    (["calculator", '{"expr": "1"}'], "unexpected argument 'expr'"),
    (["no_such_tool", "{}"], "no tool named 'no_such_tool'"),
])
def test_run_errors_exit_1_with_a_clear_message(cli: typer.Typer, args: list[str],
                                                message: str) -> None:
    code, out, err = invoke(cli, "tools", "run", *args)
    assert code == 1 and message in err and out == ""
    assert "Traceback" not in err


@pytest.mark.slow
def test_mcp_tools_are_listed_and_run(cli: typer.Typer, monkeypatch: pytest.MonkeyPatch) -> None:
    servers = {"servers": {"demo": {"command": sys.executable, "args": [DEMO, "stdio"]},
                           "broken": {"command": sys.executable, "args": ["-c", "pass"]}}}
    monkeypatch.setenv("OPENWEN_MCP", json.dumps(servers))
    code, out, _ = invoke(cli, "tools", "list", "--json")
    assert code == 0
    data = json.loads(out)
    demo = {t["name"]: t for t in data["tools"] if t["source"] == "mcp:demo"}
    assert demo["demo__add"]["parameters"]["required"] == ["a", "b"]
    assert "mcp:broken" in data["problems"]
    code, out, _ = invoke(cli, "tools", "run", "demo__add", '{"a": 1, "b": 41}')
    assert (code, out) == (0, "42\n")


async def test_terminal_confirmation() -> None:
    from openwen.messages import ToolCall
    from openwen.tools.builtin.calculator import make_calculator

    call, calc = ToolCall("c1", "calculator", '{"expression": "1"}'), make_calculator()
    questions: list[str] = []

    def answer(reply: str) -> Callable[[str], str]:
        def ask(question: str) -> str:
            questions.append(question)
            return reply
        return ask

    assert await tools_cmd.terminal_confirm(answer("y"), lambda: True)(call, calc) is True
    assert await tools_cmd.terminal_confirm(answer(""), lambda: True)(call, calc) is False
    assert await tools_cmd.terminal_confirm(answer("y"), lambda: False)(call, calc) is False
    assert questions[0] == 'Allow calculator (builtin) with {"expression": "1"}? [y/N] '
    assert len(questions) == 2
