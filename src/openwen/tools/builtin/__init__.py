"""The built-in tools: calculator, clock, code interpreter, workspace files, fetch, web search."""

from __future__ import annotations

from openwen.tools.base import Tool
from openwen.tools.builtin.calculator import make_calculator
from openwen.tools.builtin.clock import make_clock
from openwen.tools.builtin.code import make_code_tool
from openwen.tools.builtin.files import make_file_tools
from openwen.tools.builtin.web import make_fetch_tool, make_search_tool
from openwen.tools.context import ToolContext


def builtin_tools(ctx: ToolContext) -> list[Tool]:
    """Every built-in tool for this user (``web_search`` only when a SearXNG URL is set)."""
    tools: list[Tool] = [make_calculator(), make_clock(), make_code_tool(ctx),
                         *make_file_tools(ctx), make_fetch_tool(ctx)]
    if (search := make_search_tool(ctx)) is not None:
        tools.append(search)
    return tools
