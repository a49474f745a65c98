"""The server's tools: MCP servers started once per process, built-ins made per user.

``SharedTools`` is created with the app (``app.state.tools``) and started in its lifespan: every
configured MCP server is connected once, and its tools are shared by every user's registry. A
server that fails to start is reported in ``problems`` (shown by ``GET /api/tools``), never fatal.
Built-in tools act for one user (their file workspace, ``<home>/workspaces/<user>``), so a
registry is made per answer: cheap.
"""

from __future__ import annotations

import logging
import re

from openwen.config import Settings
from openwen.errors import OpenwenError
from openwen.tools.base import Tool
from openwen.tools.registry import ToolRegistry, user_tools

log = logging.getLogger(__name__)

_WORKSPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")


def workspace_name(username: str | None, user_id: int | None = None) -> str:
    """The user's workspace folder name: the user name when it can name a folder (so the CLI's
    ``--user NAME`` and the web app share it), else ``user-<id>``; ``local`` without a user."""
    if username is None:
        return "local"
    if _WORKSPACE.match(username) and ".." not in username:
        return username
    return f"user-{user_id}"


class SharedTools:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.mcp_tools: list[Tool] = []
        self.problems: dict[str, str] = {}
        self._manager: object | None = None
        self._started = False

    async def start(self) -> None:
        """Connect to the configured MCP servers (once; a failure is a problem, not fatal)."""
        if self._started:
            return
        self._started = True
        if not (self.settings.mcp or {}).get("servers"):
            return
        from openwen.tools.mcp import McpManager

        try:
            manager = McpManager(self.settings)
        except OpenwenError as exc:  # a malformed [mcp] section
            log.warning("MCP servers not started: %s", exc.message)
            self.problems["mcp"] = exc.message
            return
        self._manager = manager
        self.mcp_tools = await manager.start()
        self.problems.update({f"mcp:{k}": v for k, v in manager.problems.items()})
        if self.mcp_tools:
            log.info("MCP tools: %s", ", ".join(t.name for t in self.mcp_tools))

    def registry(self, workspace: str) -> ToolRegistry:
        """The built-ins acting for ``workspace`` plus the shared MCP tools."""
        return user_tools(self.settings, workspace, self.mcp_tools, problems=self.problems)

    async def aclose(self) -> None:
        manager, self._manager = self._manager, None
        if manager is not None:
            await manager.aclose()  # type: ignore[attr-defined]
