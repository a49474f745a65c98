"""``openwen tools list`` and ``openwen tools run NAME 'JSON-ARGS'``."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from openwen.chat.agent import ConfirmFn
from openwen.cli.common import fail_on_errors, settings_or_exit
from openwen.config import Settings
from openwen.messages import ToolCall
from openwen.tools.base import Tool, ToolOutput, schema_hint
from openwen.tools.registry import ToolRegistry, load_tools

UserOpt = Annotated[str | None, typer.Option(
    "--user", help="the account whose workspace the file tools use (default: the local "
    "account, as for `openwen docs`)")]
McpOpt = Annotated[bool, typer.Option("--mcp/--no-mcp", help="include MCP servers' tools")]

tools_app = typer.Typer(help="Tools models can call: list them, or call one directly.",
                        no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(tools_app, name="tools")


@tools_app.command("list")
def list_tools(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
    user: UserOpt = None,
    mcp: McpOpt = True,
) -> None:
    """Show every tool with its source (builtin or mcp:SERVER) and argument schema."""
    settings = settings_or_exit()
    with fail_on_errors():
        rows, problems = asyncio.run(_describe(settings, user, mcp))
    if as_json:
        typer.echo(json.dumps({"tools": rows, "problems": problems}, indent=2,
                              ensure_ascii=False))
        return
    table = Table(title="openwen tools")
    for column in ("name", "source", "side effects", "arguments", "description"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row["name"], row["source"], "yes" if row["side_effects"] else "",
                      schema_hint(row["parameters"]), row["description"].split("\n")[0])
    Console().print(table)
    for source, problem in problems.items():
        typer.echo(f"warning: {source}: {problem}", err=True)


@tools_app.command("run")
def run_tool(
    name: Annotated[str, typer.Argument(help="the tool's name (see `openwen tools list`)")],
    arguments: Annotated[str, typer.Argument(help="the arguments as a JSON object")] = "{}",
    user: UserOpt = None,
    save_images: Annotated[Path | None, typer.Option(
        "--save-images", help="write images the tool returns to this folder")] = None,
) -> None:
    """Call one tool directly and print its result (for debugging tools and MCP servers)."""
    args = _parse(arguments)
    settings = settings_or_exit()
    with fail_on_errors():
        output = asyncio.run(_call(settings, user, name, args))
    for line in _image_lines(output, save_images):
        typer.echo(line, err=True)
    if output.is_error:
        typer.echo(output.text, err=True)
        raise typer.Exit(1)
    typer.echo(output.text)


def terminal_confirm(ask: Callable[[str], str] = input,
                     interactive: Callable[[], bool] = lambda: sys.stdin.isatty()) -> ConfirmFn:
    """A confirmation callback for terminal chats (``Agent(confirm=...)``): asks ``[y/N]``.
    Without a terminal to ask on, the answer is no."""

    async def confirm(call: ToolCall, tool: Tool) -> bool:
        if not interactive():
            return False
        question = f"Allow {tool.name} ({tool.source}) with {call.arguments}? [y/N] "
        try:
            answer = await asyncio.to_thread(ask, question)
        except (EOFError, KeyboardInterrupt):
            return False
        return answer.strip().lower() in ("y", "yes")

    return confirm


def _parse(arguments: str) -> dict[str, Any]:
    try:
        value = json.loads(arguments)
    except ValueError as exc:
        typer.echo(f"error: the arguments are not valid JSON: {exc}", err=True)
        raise typer.Exit(1) from None
    if not isinstance(value, dict):
        typer.echo("error: the arguments must be a JSON object, like '{\"expression\": \"1+1\"}'",
                   err=True)
        raise typer.Exit(1)
    return value


async def _describe(settings: Settings, user: str | None, mcp: bool
                    ) -> tuple[list[dict[str, Any]], dict[str, str]]:
    registry = await _load(settings, user, mcp)
    try:
        rows = [{"name": t.name, "source": t.source, "side_effects": t.side_effects,
                 "description": t.description, "parameters": t.parameters} for t in registry]
        return rows, dict(registry.problems)
    finally:
        await registry.aclose()


async def _call(settings: Settings, user: str | None, name: str, args: dict[str, Any]
                ) -> ToolOutput:
    registry = await _load(settings, user, mcp=False)
    if name not in registry:  # only start MCP servers when the tool is not a built-in
        await registry.aclose()
        registry = await _load(settings, user, mcp=True)
    try:
        if name not in registry and registry.problems:
            problems = "; ".join(f"{k}: {v}" for k, v in registry.problems.items())
            return ToolOutput(f"error: no tool named {name!r} ({problems})", error="unknown_tool")
        return await registry.call(name, args, timeout=settings.tool_timeout)
    finally:
        await registry.aclose()


async def _load(settings: Settings, user: str | None, mcp: bool) -> ToolRegistry:
    workspace = await asyncio.to_thread(acting_workspace, settings, user)
    return await load_tools(settings, user=workspace, mcp=mcp)


def acting_workspace(settings: Settings, username: str | None = None) -> str:
    """The workspace the CLI's tools act in: that of the account ``username`` names, else of
    the local account (the one ``openwen docs`` and ``openwen memory`` act as). Blocking; it
    also moves workspaces of the old name-keyed layout, once."""
    from openwen.cli.docs_cmd import local_user_id
    from openwen.storage import Storage
    from openwen.tools.workspaces import migrate_named_workspaces, workspace_name

    storage = Storage.open(settings.database)
    try:
        user_id = local_user_id(storage, username)
        migrate_named_workspaces(settings, ((u.id, u.username)
                                            for u in storage.users.list_all()))
        return workspace_name(user_id)
    finally:
        storage.close()


def _image_lines(output: ToolOutput, folder: Path | None) -> list[str]:
    lines = []
    for i, image in enumerate(output.images, 1):
        if folder is None:
            lines.append(f"[image {i}: {image.mime_type}, {len(image.data)} bytes; "
                         "--save-images DIR writes it]")
            continue
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"image-{i}.{image.mime_type.split('/')[-1]}"
        path.write_bytes(image.data)
        lines.append(f"[image {i} saved to {path}]")
    return lines
