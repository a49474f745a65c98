"""The server's tools: MCP servers per process or per user, built-ins made per user.

``SharedTools`` is created with the app (``app.state.tools``) and started in its lifespan: every
MCP server marked ``shared`` is connected once, and its tools are shared by the registries of
the users it allows; per-user servers (the default) run one instance per user, started lazily
(:mod:`openwen.tools.mcp_pool`). A server that fails to start is reported in ``problems``
(shown by ``GET /api/tools``), never fatal.
Built-in tools act for one user (their file workspace, ``<home>/workspaces/_<id>``, see
:mod:`openwen.tools.workspaces`), so a registry is made per answer: cheap.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from openwen.config import Settings
from openwen.errors import OpenwenError
from openwen.tools import workspaces
from openwen.tools.base import Tool
from openwen.tools.context import ToolContext
from openwen.tools.mcp_pool import allowed_shared
from openwen.tools.registry import ToolRegistry, user_tools
from openwen.tools.sandbox import log_sandbox_mode

if TYPE_CHECKING:
    from openwen.storage import UserRecord
    from openwen.tools.mcp_pool import McpPool

log = logging.getLogger(__name__)


def workspace_name(username: str | None, user_id: int | None = None) -> str:
    """The account's workspace folder name, keyed by its id, never its name (``_<id>``;
    ``local`` without an account). ``username`` is ignored (kept for callers)."""
    return workspaces.workspace_name(user_id)


class SharedTools:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.mcp_tools: list[Tool] = []  # of the shared servers
        self.problems: dict[str, str] = {}
        self._manager: object | None = None
        self.pool: McpPool | None = None  # the per-user servers
        self._started = False

    async def start(self) -> None:
        """Connect to the configured MCP servers (once; a failure is a problem, not fatal)."""
        if self._started:
            return
        self._started = True
        await asyncio.to_thread(log_sandbox_mode, self.settings)  # one line: cgroup or rlimits
        if not (self.settings.mcp or {}).get("servers"):
            return
        from openwen.tools.mcp import McpManager
        from openwen.tools.mcp_pool import McpPool

        try:
            manager = McpManager(self.settings, shared_only=True)
            pool = McpPool(self.settings)
        except OpenwenError as exc:  # a malformed [mcp] section
            log.warning("MCP servers not started: %s", exc.message)
            self.problems["mcp"] = exc.message
            return
        self._manager, self.pool = manager, pool
        self.mcp_tools, _ = await asyncio.gather(manager.start(), pool.start())
        for problems in (manager.problems, pool.problems):
            self.problems.update({f"mcp:{k}": v for k, v in problems.items()})
        if self.mcp_tools:
            log.info("shared MCP tools: %s", ", ".join(t.name for t in self.mcp_tools))

    def registry(self, workspace: str, user: UserRecord | None = None) -> ToolRegistry:
        """The built-ins acting in ``workspace`` plus the MCP tools ``user`` may use (shared
        servers' and their own per-user instances'; without a user, only shared servers open
        to everyone)."""
        username = user.username if user is not None else None
        tools = allowed_shared(self.mcp_tools, username)
        if self.pool is not None and user is not None:
            folder = ToolContext(self.settings, workspace).workspace
            tools += self.pool.tools(user.id, username, folder)
        return user_tools(self.settings, workspace, tools, problems=self.problems)

    async def aclose(self) -> None:
        manager, self._manager = self._manager, None
        pool, self.pool = self.pool, None
        if pool is not None:
            await pool.aclose()
        if manager is not None:
            await manager.aclose()  # type: ignore[attr-defined]
