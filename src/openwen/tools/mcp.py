"""MCP client: tools of Model Context Protocol servers beside the built-ins.

Servers are configured in the config file, one table each::

    [mcp.servers.notes]                 # stdio: openwen starts the command
    command = "npx"
    args = ["-y", "@modelcontextprotocol/server-filesystem", "/home/me/notes"]
    env = { LOG_LEVEL = "warn" }        # added to a minimal default environment
    timeout = 30                        # seconds per tool call (default 30)

    [mcp.servers.search]                # streamable HTTP
    url = "http://127.0.0.1:9000/mcp"
    headers = { Authorization = "Bearer ..." }

Optional keys: ``cwd``, ``connect_timeout`` (default 15), ``enabled`` (default true), ``tools``
(only these tool names), ``side_effects`` (true/false for every tool of the server; by default a
tool counts as side-effecting unless the server marks it read-only). ``OPENWEN_MCP`` may hold the
same shape as JSON (``{"servers": {...}}``).

Who may use a server under ``openwen serve`` (see :mod:`openwen.tools.mcp_pool`): ``shared``
(default false: every user gets their own instance, started at their first call and stopped
after ``idle_seconds`` unused, default 600; true: one instance for everyone), ``users`` (the
user names that may use it; default everyone). ``{workspace}`` in ``args``, ``env``, ``cwd``,
``url`` or ``headers`` of a per-user server becomes that user's workspace folder, so a
filesystem server can serve each user their own files.

A tool ``search`` of server ``web`` is offered to models as ``web__search``. Each server runs as
one long-lived connection owned by a background task. Every request has a deadline: a server that
hangs, crashes or answers garbage yields a clear error result, never a stuck chat; after a crash the
next call reconnects once.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from openwen.config import Settings
from openwen.errors import ConfigError
from openwen.messages import ToolImage
from openwen.tools.base import Tool, ToolArgumentError, ToolError, ToolOutput, truncate

log = logging.getLogger(__name__)

_SERVER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
WORKSPACE = "{workspace}"


class _QuietParseErrors(logging.Filter):
    """The SDK logs a traceback per non-JSON line a server prints; openwen reports it once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Failed to parse JSONRPC" not in record.getMessage()


logging.getLogger("mcp.client.stdio").addFilter(_QuietParseErrors())


class McpServerConfig(BaseModel):
    """One ``[mcp.servers.NAME]`` table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: float = Field(30.0, gt=0)
    connect_timeout: float = Field(15.0, gt=0)
    enabled: bool = True
    tools: list[str] | None = None
    side_effects: bool | None = None
    shared: bool = False
    users: list[str] | None = None
    idle_seconds: float = Field(600.0, gt=0)

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if bool(self.command) == bool(self.url):
            raise ValueError("set either command (stdio) or url (streamable HTTP)")
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        if self.shared and any(WORKSPACE in text for text in self._texts()):
            raise ValueError(f"{WORKSPACE} only works in a per-user server (shared = false)")
        return self

    def _texts(self) -> list[str]:
        return [*self.args, *self.env.values(), self.cwd or "", self.url or "",
                *self.headers.values()]

    def allows(self, username: str | None) -> bool:
        """Whether the account ``username`` (None: no account) may use this server."""
        if self.users is None:
            return True
        return username is not None and username in self.users

    def for_workspace(self, workspace: Path) -> McpServerConfig:
        """This configuration with ``{workspace}`` replaced by ``workspace``."""
        def fill(text: str) -> str:
            return text.replace(WORKSPACE, str(workspace))

        return self.model_copy(update={
            "args": [fill(a) for a in self.args],
            "env": {k: fill(v) for k, v in self.env.items()},
            "cwd": fill(self.cwd) if self.cwd else None,
            "url": fill(self.url) if self.url else None,
            "headers": {k: fill(v) for k, v in self.headers.items()}})

    @property
    def transport(self) -> str:
        return "stdio" if self.command else "http"


def mcp_servers(settings: Settings) -> dict[str, McpServerConfig]:
    """The configured servers; a malformed section is a :class:`ConfigError` naming the spot."""
    section = settings.mcp or {}
    unknown = set(section) - {"servers"}
    if unknown:
        raise ConfigError(f"[mcp]: unknown key(s) {', '.join(sorted(unknown))}; "
                          "servers go in [mcp.servers.NAME] tables")
    servers = section.get("servers") or {}
    if not isinstance(servers, dict):
        raise ConfigError("[mcp.servers] must be a table of servers")
    out: dict[str, McpServerConfig] = {}
    for name, table in servers.items():
        if not _SERVER_NAME.match(name):
            raise ConfigError(f"[mcp.servers.{name}]: a server name uses letters, digits, _ "
                              "and - (at most 32)")
        try:
            out[name] = McpServerConfig.model_validate(table)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'table'}: {e['msg']}"
                                 for e in exc.errors())
            raise ConfigError(f"[mcp.servers.{name}]: {problems}") from None
    return out


def tool_name(server: str, tool: str) -> str:
    """``server__tool``, made to fit OpenAI's tool-name rules."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", tool)
    return f"{server}__{safe}"[:64]


class McpConnection:
    """One server: a background task holds the session open; calls have deadlines."""

    def __init__(self, name: str, config: McpServerConfig, *, log_dir: Path | None = None):
        self.name = name
        self.config = config
        self.log_dir = log_dir
        self._client: Any = None
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._failure: str | None = None
        self._garbage: str | None = None
        self._ready = False
        self._lock = asyncio.Lock()

    @property
    def log_file(self) -> Path | None:
        return self.log_dir / f"mcp-{self.name}.log" if self.log_dir else None

    async def start(self) -> list[Any]:
        """Connect and list the server's tools, within ``connect_timeout``."""
        await self._connect()
        return await self.list_tools()

    async def list_tools(self) -> list[Any]:
        tools: list[Any] = []
        cursor: str | None = None
        for _ in range(50):  # a paginator that never ends cannot hang us
            page = await self._request("tools/list", self._session().list_tools(cursor=cursor),
                                       self.config.connect_timeout)
            tools += page.tools
            cursor = page.next_cursor
            if not cursor:
                break
        if self.config.tools is not None:
            tools = [t for t in tools if t.name in set(self.config.tools)]
        return tools

    async def call(self, tool: str, arguments: dict[str, Any]) -> ToolOutput:
        async with self._lock:
            if self._client is None:  # crashed earlier, or never started: one reconnect
                await self._connect()
        result = await self._request(
            f"tools/call {tool}",
            self._session().call_tool(tool, arguments,
                                      read_timeout_seconds=self.config.timeout),
            self.config.timeout)
        return convert_result(result)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        self._client = None
        if task is None:
            return
        if self._ready and self._stop is not None:
            self._stop.set()  # a clean goodbye
            done, _ = await asyncio.wait([task], timeout=5)
            if done:
                return
        task.cancel()  # still connecting, or stuck: the transport kills the process
        await asyncio.wait([task], timeout=10)

    # -- internals -------------------------------------------------------------------------

    def _session(self) -> Any:
        if self._client is None:
            raise ToolError(f"MCP server {self.name} is not connected: {self._failure or '?'}")
        return self._client

    async def _request(self, what: str, awaitable: Any, timeout: float) -> Any:
        try:
            async with asyncio.timeout(timeout):
                return await awaitable
        except TimeoutError:
            raise ToolError(f"MCP server {self.name} did not answer {what} within "
                            f"{timeout:g} seconds{self._garbage_note()}") from None
        except ToolError:
            raise
        except Exception as exc:
            from mcp import MCPError
            from mcp_types import CONNECTION_CLOSED

            if not isinstance(exc, MCPError) or exc.error.code == CONNECTION_CLOSED:
                self._client = None  # the connection broke: reconnect on the next call
            raise ToolError(f"MCP server {self.name} failed on {what}: "
                            f"{_describe(exc)}{self._stderr_tail()}") from None

    async def _connect(self) -> None:
        await self.aclose()
        self._ready = False
        self._garbage = None
        ready: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._serve(ready, self._stop),
                                         name=f"mcp-{self.name}")
        try:
            async with asyncio.timeout(self.config.connect_timeout):
                self._client = await asyncio.shield(ready)
        except TimeoutError:
            ready.cancel()
            await self.aclose()
            self._failure = (f"did not start within {self.config.connect_timeout:g} seconds"
                             f"{self._garbage_note()}")
            raise ToolError(f"MCP server {self.name} {self._failure}"
                            f"{self._stderr_tail()}") from None
        except Exception as exc:
            await self.aclose()
            self._failure = _describe(exc)
            raise ToolError(f"MCP server {self.name} could not start: {self._failure}"
                            f"{self._stderr_tail()}") from None

    async def _serve(self, ready: asyncio.Future[Any], stop: asyncio.Event) -> None:
        """Own the session: enter the client, hand it over, wait for the stop signal."""
        try:
            async with contextlib.AsyncExitStack() as stack:
                client = await stack.enter_async_context(await self._make_client(stack))
                if not ready.done():
                    self._ready = True
                    ready.set_result(client)
                await stop.wait()
        except BaseException as exc:  # noqa: BLE001 - reported to the waiting caller
            self._failure = _describe(exc)
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else ToolError("cancelled"))
            elif not isinstance(exc, asyncio.CancelledError):
                log.warning("MCP server %s disconnected: %s", self.name, self._failure)
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            if self._client is not None and self._task is asyncio.current_task():
                self._client = None

    async def _make_client(self, stack: contextlib.AsyncExitStack) -> Any:
        from mcp import Client, StdioServerParameters
        from mcp.client.stdio import stdio_client
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        c = self.config
        if c.command:
            params = StdioServerParameters(command=c.command, args=c.args, env=c.env or None,
                                           cwd=c.cwd)
            transport = stdio_client(params, errlog=self._errlog(stack))
        else:
            http = await stack.enter_async_context(create_mcp_http_client(headers=c.headers))
            transport = streamable_http_client(c.url or "", http_client=http)
        return Client(transport, read_timeout_seconds=c.timeout,
                      message_handler=self._on_message)

    async def _on_message(self, message: Any) -> None:
        """Transport faults (lines that are not JSON-RPC) arrive here; remember the last."""
        if isinstance(message, Exception):
            self._garbage = " ".join(str(message).split())[:200]

    def _garbage_note(self) -> str:
        if not self._garbage:
            return ""
        return f"; it wrote output that is not MCP JSON-RPC ({self._garbage})"

    def _errlog(self, stack: contextlib.ExitStack | contextlib.AsyncExitStack) -> Any:
        path = self.log_file
        if path is None:
            return stack.enter_context(open("/dev/null", "w"))  # noqa: SIM115
        path.parent.mkdir(parents=True, exist_ok=True)
        return stack.enter_context(path.open("a", encoding="utf-8"))

    def _stderr_tail(self) -> str:
        path = self.log_file
        if path is None or not path.exists():
            return ""
        with contextlib.suppress(OSError):
            lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
            if lines:
                return f" (its last stderr line: {lines[-1][:300]})"
        return ""


class McpTool(Tool):
    """A tool of an MCP server; arguments are checked against its JSON schema first."""

    def __init__(self, connection: McpConnection, remote: Any):
        config = connection.config
        read_only = bool(remote.annotations and remote.annotations.read_only_hint)
        side_effects = config.side_effects if config.side_effects is not None else not read_only
        schema = remote.input_schema or {"type": "object", "properties": {}}
        super().__init__(tool_name(connection.name, remote.name),
                         remote.description or remote.title or remote.name, schema,
                         side_effects=side_effects, source=f"mcp:{connection.name}",
                         timeout=config.timeout + 5)
        self.connection = connection
        self.remote_name = remote.name

    def validate(self, args: dict[str, Any]) -> dict[str, Any]:
        try:
            import jsonschema
        except ImportError:  # pragma: no cover - jsonschema comes with mcp
            return args
        validator_cls = jsonschema.validators.validator_for(self.parameters)
        errors = sorted(validator_cls(self.parameters).iter_errors(args), key=lambda e: e.path)
        if errors:
            raise ToolArgumentError("; ".join(
                f"'{'.'.join(str(p) for p in e.path) or 'arguments'}': {e.message}"
                for e in errors[:5]))
        return args

    async def invoke(self, args: dict[str, Any]) -> ToolOutput:
        return await self.connection.call(self.remote_name, args)


def convert_result(result: Any) -> ToolOutput:
    """An MCP ``CallToolResult`` as text (and images) for the model and the UI."""
    texts: list[str] = []
    images: list[ToolImage] = []
    for block in result.content or []:
        kind = getattr(block, "type", None)
        if kind == "text":
            texts.append(block.text)
        elif kind == "image":
            with contextlib.suppress(binascii.Error, ValueError):
                images.append(ToolImage(block.mime_type, base64.b64decode(block.data)))
                texts.append(f"[image {block.mime_type}]")
        elif kind == "resource_link":
            texts.append(f"[resource {block.uri}]")
        elif kind == "resource":
            resource = block.resource
            texts.append(getattr(resource, "text", None) or f"[resource {resource.uri}]")
        else:
            texts.append(f"[{kind or 'unknown'} content]")
    if not texts and result.structured_content is not None:
        texts.append(json.dumps(result.structured_content, ensure_ascii=False, default=str))
    text = truncate("\n".join(texts) or "(no output)")
    if result.is_error:
        return ToolOutput(f"Error: {text}", error="mcp_error", images=tuple(images))
    return ToolOutput(text, images=tuple(images))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions[:3])
    message = str(exc) or type(exc).__name__
    return message if type(exc).__name__ in message else f"{type(exc).__name__}: {message}"


def _sdk_problem() -> str | None:
    """Why the MCP SDK cannot be used, or ``None``."""
    try:
        from mcp import Client  # noqa: F401 - the mcp 2 client API
    except ImportError:
        return ("MCP servers need the mcp package, version 2 or newer "
                "(pip install 'mcp>=2.3,<3')")
    return None


class McpManager:
    """Every configured server (or, with ``shared_only``, those marked ``shared``): start them
    together, offer their tools, close them. ``workspace`` fills ``{workspace}`` (the CLI's
    acting account); without it a per-user server's placeholder stays unfilled."""

    def __init__(self, settings: Settings, *, shared_only: bool = False,
                 workspace: Path | None = None):
        log_dir = settings.home / "logs"
        self.connections = [
            McpConnection(name, config.for_workspace(workspace) if workspace else config,
                          log_dir=log_dir)
            for name, config in mcp_servers(settings).items()
            if config.enabled and (config.shared or not shared_only)]
        self.problems: dict[str, str] = {}

    async def start(self) -> list[Tool]:
        """Connect to all servers at once; a server that fails is reported, not fatal."""
        if (missing := _sdk_problem()) is not None:
            self.problems = {c.name: missing for c in self.connections}
            return []
        results = await asyncio.gather(*(c.start() for c in self.connections),
                                       return_exceptions=True)
        tools: list[Tool] = []
        failed = []
        for connection, result in zip(self.connections, results, strict=True):
            if isinstance(result, BaseException):
                self.problems[connection.name] = (
                    result.args[0] if isinstance(result, ToolError) else _describe(result))
                log.warning("%s", self.problems[connection.name])
                failed.append(connection.aclose())
                continue
            tools += [McpTool(connection, remote) for remote in result]
        await asyncio.gather(*failed, return_exceptions=True)
        return tools

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self.connections), return_exceptions=True)
