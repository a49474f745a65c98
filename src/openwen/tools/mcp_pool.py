"""MCP servers under ``openwen serve``: shared ones, per-user ones, and who may use each.

A server marked ``shared = true`` is one instance for everyone (its tools act with whatever the
server can reach, for every user allowed). A per-user server (``shared = false``, the default,
safe for a filesystem-like server) is a separate instance for each user: started at that
user's first call of one of its tools, with ``{workspace}`` in its command line filled with
that user's workspace folder, and stopped after ``idle_seconds`` without a call. So that a
registry can be built without starting anything, each per-user server is started once at
startup with an empty scratch folder as its workspace, only to learn its tools, then stopped.

``users = ["alice", "bob"]`` restricts a server (either kind) to those accounts; callers
without an account (API requests without a key) never get per-user servers, nor servers with
a ``users`` list.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from openwen.config import Settings
from openwen.tools.base import Tool, ToolError, ToolOutput
from openwen.tools.mcp import McpConnection, McpServerConfig, McpTool, _describe, mcp_servers

log = logging.getLogger(__name__)


class PerUserServer:
    """One per-user server: its tool list, and the running instance of each user."""

    def __init__(self, name: str, config: McpServerConfig, log_dir: Path):
        self.name = name
        self.config = config
        self.log_dir = log_dir
        self.template = McpConnection(name, config, log_dir=log_dir)  # never started
        self.remote_tools: list[Any] = []
        self.instances: dict[int, McpConnection] = {}
        self.last_used: dict[int, float] = {}
        self.in_flight: dict[int, int] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    async def probe(self) -> None:
        """Start once with a scratch workspace to learn the tools, then stop."""
        with tempfile.TemporaryDirectory(prefix="openwen-mcp-probe-") as scratch:
            connection = McpConnection(self.name, self.config.for_workspace(Path(scratch)),
                                       log_dir=self.log_dir)
            try:
                self.remote_tools = await connection.start()
            finally:
                await connection.aclose()

    def tools(self, user_id: int, workspace: Path) -> list[Tool]:
        return [UserMcpTool(self, remote, user_id, workspace) for remote in self.remote_tools]

    @contextlib.asynccontextmanager
    async def using(self, user_id: int, workspace: Path) -> AsyncIterator[McpConnection]:
        """The user's instance for one call; it is never stopped as idle meanwhile."""
        self.in_flight[user_id] = self.in_flight.get(user_id, 0) + 1
        try:
            yield await self.connection(user_id, workspace)
        finally:
            self.in_flight[user_id] -= 1
            self.last_used[user_id] = time.monotonic()

    async def connection(self, user_id: int, workspace: Path) -> McpConnection:
        """The user's running instance, started on first use."""
        self.last_used[user_id] = time.monotonic()
        lock = self._locks.setdefault(user_id, asyncio.Lock())
        async with lock:
            running = self.instances.get(user_id)
            if running is not None:
                return running
            await asyncio.to_thread(workspace.mkdir, parents=True, exist_ok=True)
            connection = McpConnection(self.name, self.config.for_workspace(workspace),
                                       log_dir=self.log_dir)
            await connection.start()
            self.instances[user_id] = connection
            log.info("MCP server %s started for user %s", self.name, user_id)
            return connection

    async def stop_idle(self, now: float) -> None:
        for user_id, used in list(self.last_used.items()):
            if now - used >= self.config.idle_seconds and user_id in self.instances:
                lock = self._locks.setdefault(user_id, asyncio.Lock())
                if lock.locked() or self.in_flight.get(user_id, 0) > 0:
                    continue
                connection = self.instances.pop(user_id)
                self.last_used.pop(user_id, None)
                await connection.aclose()
                log.info("MCP server %s stopped for user %s (idle)", self.name, user_id)

    async def aclose(self) -> None:
        instances, self.instances = list(self.instances.values()), {}
        await asyncio.gather(*(c.aclose() for c in instances), return_exceptions=True)


class UserMcpTool(McpTool):
    """A per-user server's tool, bound to one user: each call goes to that user's instance."""

    def __init__(self, server: PerUserServer, remote: Any, user_id: int, workspace: Path):
        super().__init__(server.template, remote)
        self.server = server
        self.user_id = user_id
        self.workspace = workspace

    async def invoke(self, args: dict[str, Any]) -> ToolOutput:
        async with self.server.using(self.user_id, self.workspace) as connection:
            return await connection.call(self.remote_name, args)


class McpPool:
    """The per-user servers of one ``openwen serve`` process."""

    def __init__(self, settings: Settings):
        log_dir = settings.home / "logs"
        self.servers = [PerUserServer(name, config, log_dir)
                        for name, config in mcp_servers(settings).items()
                        if config.enabled and not config.shared]
        self.problems: dict[str, str] = {}
        self._reaper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Learn every per-user server's tools (a server that fails is a problem, not fatal)
        and start stopping idle instances."""
        results = await asyncio.gather(*(s.probe() for s in self.servers),
                                       return_exceptions=True)
        for server, result in zip(self.servers, results, strict=True):
            if isinstance(result, BaseException):
                self.problems[server.name] = (result.args[0] if isinstance(result, ToolError)
                                              else _describe(result))
                log.warning("%s", self.problems[server.name])
        if self.servers:
            self._reaper = asyncio.create_task(self._stop_idle_forever(), name="mcp-reaper")

    def tools(self, user_id: int | None, username: str | None, workspace: Path) -> list[Tool]:
        """The per-user servers' tools bound to this user (none without an account)."""
        if user_id is None:
            return []
        return [tool for server in self.servers if server.config.allows(username)
                for tool in server.tools(user_id, workspace)]

    def running(self) -> dict[str, list[int]]:
        """Which users' instances run, per server (for tests and diagnostics)."""
        return {s.name: sorted(s.instances) for s in self.servers}

    async def stop_idle(self) -> None:
        now = time.monotonic()
        for server in self.servers:
            await server.stop_idle(now)

    async def _stop_idle_forever(self) -> None:
        every = max(0.5, min(30.0, min(s.config.idle_seconds for s in self.servers) / 4))
        while True:
            await asyncio.sleep(every)
            try:
                await self.stop_idle()
            except Exception:  # noqa: BLE001 - keep reaping
                log.exception("stopping idle MCP servers failed")

    async def aclose(self) -> None:
        reaper, self._reaper = self._reaper, None
        if reaper is not None:
            reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reaper
        await asyncio.gather(*(s.aclose() for s in self.servers), return_exceptions=True)


def allowed_shared(tools: Iterable[Tool], username: str | None) -> list[Tool]:
    """The shared servers' tools this account (None: no account) may use."""
    return [tool for tool in tools
            if not isinstance(tool, McpTool) or tool.connection.config.allows(username)]
