"""Tools a model can call: the protocol, the built-ins, the sandbox and the MCP client.

A typed, documented function becomes a tool with :func:`tool` / :class:`FunctionTool`;
:func:`load_tools` gathers the built-ins and configured MCP servers into a :class:`ToolRegistry`,
which the agent loop (:mod:`openwen.chat.agent`) runs calls against.
"""

from openwen.tools.base import FunctionTool, Tool, ToolError, ToolOutput, tool
from openwen.tools.registry import ToolRegistry, confirmation_required, load_tools, user_tools

__all__ = ["FunctionTool", "Tool", "ToolError", "ToolOutput", "ToolRegistry",
           "confirmation_required", "load_tools", "tool", "user_tools"]
