"""The tools a chat can use: the built-ins plus every configured MCP server's, by name."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from openwen.config import Settings
from openwen.tools.base import Tool, ToolOutput
from openwen.tools.context import ToolContext

log = logging.getLogger(__name__)


class ToolRegistry:
    """Tools by name. ``problems`` lists sources that failed to load (an MCP server that did not
    start), so interfaces can show them; :meth:`aclose` closes MCP connections."""

    def __init__(self, tools: Iterable[Tool] = ()):
        self._tools: dict[str, Tool] = {}
        self.problems: dict[str, str] = {}
        self._mcp: Any = None
        for tool in tools:
            self.add(tool)

    def add(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ValueError(f"two tools are named {tool.name!r} "
                             f"({self._tools[tool.name].source} and {tool.source})")
        self._tools[tool.name] = tool

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def names(self) -> list[str]:
        return list(self._tools)

    def select(self, names: Iterable[str] | None) -> ToolRegistry:
        """A registry with only ``names`` (unknown names are ignored); ``None`` keeps all."""
        if names is None:
            return self
        wanted = set(names)
        sub = ToolRegistry(t for t in self if t.name in wanted)
        sub.problems = dict(self.problems)
        return sub

    def definitions(self) -> list[dict[str, Any]]:
        """OpenAI tool definitions, for ``ChatRequest.tools``."""
        return [tool.definition() for tool in self]

    async def call(self, name: str, arguments: str | Mapping[str, Any] | None, *,
                   timeout: float | None = None) -> ToolOutput:
        """Run a tool by name; an unknown name is an error result listing the real ones."""
        tool = self.get(name)
        if tool is None:
            return ToolOutput(f"Error: there is no tool named {name!r}; available tools: "
                              f"{', '.join(self.names()) or 'none'}", error="unknown_tool")
        return await tool.call(arguments, timeout=timeout)

    async def aclose(self) -> None:
        if self._mcp is not None:
            await self._mcp.aclose()
            self._mcp = None


def confirmation_required(policy: str, tools: Iterable[Tool]) -> frozenset[str]:
    """Tool names that need the user's confirmation under the ``tools_confirm`` policy:
    ``side-effects`` (every side-effecting tool), ``all``, ``none``, or names (``a,b``)."""
    tools = list(tools)
    key = policy.strip().lower()
    if key in ("side-effects", "side_effects", ""):
        return frozenset(t.name for t in tools if t.side_effects)
    if key == "all":
        return frozenset(t.name for t in tools)
    if key == "none":
        return frozenset()
    return frozenset(n.strip() for n in policy.split(",") if n.strip())


def user_tools(settings: Settings, user: str = "local", shared: Iterable[Tool] = (), *,
               problems: Mapping[str, str] | None = None) -> ToolRegistry:
    """The built-in tools acting for ``user`` (their workspace), plus ``shared`` tools, such as
    the MCP tools of a :class:`~openwen.tools.mcp.McpManager` a server started once for everyone.
    Cheap: build one per request. A ``ValueError`` means the user name cannot name a workspace.
    """
    from openwen.tools.builtin import builtin_tools

    registry = ToolRegistry(builtin_tools(ToolContext(settings, user)))
    registry.problems.update(problems or {})
    for tool in shared:
        try:
            registry.add(tool)
        except ValueError as exc:
            registry.problems[tool.source] = str(exc)
    return registry


async def load_tools(settings: Settings, *, user: str = "local", mcp: bool = True
                     ) -> ToolRegistry:
    """The built-in tools for ``user``, plus MCP servers' tools when ``mcp`` (and configured),
    for one-off use (the CLI). The registry owns the MCP connections: call
    :meth:`ToolRegistry.aclose` when done. A server that fails to start is logged and named in
    ``problems``; its tools are simply absent.
    """
    if not (mcp and (settings.mcp or {}).get("servers")):
        return user_tools(settings, user)
    from openwen.tools.mcp import McpManager

    workspace = ToolContext(settings, user).workspace
    workspace.mkdir(parents=True, exist_ok=True)
    manager = McpManager(settings, workspace=workspace)  # the CLI: one instance of each
    shared = await manager.start()
    registry = user_tools(settings, user, shared,
                          problems={f"mcp:{k}": v for k, v in manager.problems.items()})
    registry._mcp = manager
    return registry
