"""Upstreams for the remote engine's tests.

- ``llama_server``: llama-cpp-python's own OpenAI-compatible server running the bundled SmolLM2
  model, started once per session on 127.0.0.1 with an API key.
- ``stand_in``: a factory for small scripted HTTP/1.1 servers (raw asyncio, own thread) that replay
  realistic upstream answers, die mid-stream, reset connections, or proxy under a path prefix.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx
import pytest

SERVER_START_SECONDS = 180


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- llama-cpp-python's server ------------------------------------------------------------------


@dataclass(frozen=True)
class LlamaServer:
    origin: str
    api_key: str
    model: str = "smollm2"

    @property
    def base_url(self) -> str:
        return self.origin + "/v1"


@pytest.fixture(scope="session")
def llama_server(
    bundled_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    """``python -m llama_cpp.server`` on the bundled model, ready to answer."""
    port = free_port()
    key = "sk-test-" + secrets.token_hex(8)
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [
        # through openwen's launcher: plain CPU buffers where llama.cpp's AMX ones crash
        sys.executable, "-m", "openwen.engines.llama_buffers", "llama_cpp.server",
        "--model", str(bundled_model), "--model_alias", "smollm2",
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "2048", "--n_threads", "2", "--chat_format", "chatml",
        "--api_key", key, "--verbose", "false",
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    server = LlamaServer(f"http://127.0.0.1:{port}", key)
    try:
        _wait_ready(server, process, log_path)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(server: LlamaServer, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    headers = {"Authorization": f"Bearer {server.api_key}"}
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log_path.read_text(errors="replace")[-3000:]
            pytest.fail(f"llama_cpp.server exited with {process.returncode}:\n{output}")
        try:
            if httpx.get(server.base_url + "/models", headers=headers, timeout=2).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"llama_cpp.server did not become ready in {SERVER_START_SECONDS} s")


# -- stand-in upstreams -------------------------------------------------------------------------


@dataclass
class Received:
    """One request as the stand-in saw it (header names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Connection:
    """One accepted connection; a handler reads the request and writes whatever it likes."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        number: int,
        server: StandIn,
    ):
        self.reader = reader
        self.writer = writer
        self.number = number
        self.server = server
        self.chunked = False

    async def read_request(self) -> Received:
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *lines = head.rstrip("\r\n").split("\r\n")
        method, path, _ = request_line.split(" ", 2)
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await self.reader.readexactly(length) if length else b""
        received = Received(method, path, headers, body)
        self.server.requests.append(received)
        return received

    async def send_head(
        self, status: int = 200, headers: dict[str, str] | None = None, *, chunked: bool = True
    ) -> None:
        self.chunked = chunked
        lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if chunked:
            lines.append("Transfer-Encoding: chunked")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await self.writer.drain()

    async def send_body(self, data: bytes) -> None:
        if self.chunked:
            data = f"{len(data):x}\r\n".encode() + data + b"\r\n"
        self.writer.write(data)
        await self.writer.drain()

    async def start_sse(self) -> None:
        await self.send_head(200, {"Content-Type": "text/event-stream"})

    async def send_event(self, payload: Any) -> None:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        await self.send_body(f"data: {data}\n\n".encode())

    async def finish(self) -> None:
        """End the body properly and close."""
        if self.chunked:
            self.writer.write(b"0\r\n\r\n")
        await self.writer.drain()
        self.writer.close()

    async def send_json(
        self, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> None:
        body = json.dumps(payload).encode()
        extra = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        await self.send_head(status, {**extra, **(headers or {})}, chunked=False)
        self.writer.write(body)
        await self.writer.drain()
        self.writer.close()

    def drop(self) -> None:
        """Close the socket mid-answer, as a crashed upstream would."""
        self.writer.transport.close()

    def reset(self) -> None:
        """Abort the connection with a TCP reset, before any response byte."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


Handler = Callable[[Connection], Awaitable[None]]


@dataclass
class StandIn:
    """A scripted HTTP/1.1 server on 127.0.0.1 running ``handler`` for each connection.

    Pass ``sock`` (bound, not listening) to start refusing connections until :meth:`listen`.
    """

    handler: Handler
    sock: socket.socket | None = None
    requests: list[Received] = field(default_factory=list)
    connections: int = 0
    client_gone: threading.Event = field(default_factory=threading.Event)
    port: int = 0

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StandIn:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._open(), self._loop).result(10)
        return self

    async def _open(self) -> None:
        if self.sock is not None:
            self._server = await asyncio.start_server(
                self._serve, sock=self.sock, start_serving=False
            )
        else:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def listen(self) -> None:
        """Start accepting; connections made from now on are queued by the kernel."""
        assert self.sock is not None and self._server is not None
        self.sock.listen()
        asyncio.run_coroutine_threadsafe(self._server.start_serving(), self._loop)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = self.connections
        self.connections += 1
        try:
            await self.handler(Connection(reader, writer, number, self))
        except (ConnectionError, asyncio.IncompleteReadError):
            self.client_gone.set()
        finally:
            writer.transport.close()

    def stop(self) -> None:
        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def stand_in() -> Iterator[Callable[..., StandIn]]:
    """``stand_in(handler, sock=None)`` starts a :class:`StandIn`; all are stopped afterwards."""
    started: list[StandIn] = []

    def start(handler: Handler, sock: socket.socket | None = None) -> StandIn:
        server = StandIn(handler, sock=sock).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on: connections to it are refused."""
    return free_port()


@pytest.fixture
def proxy_to() -> Callable[[str, str], Handler]:
    """``proxy_to(origin, prefix)``: a stand-in handler serving ``origin`` under ``prefix``."""
    return _proxy_to


def _proxy_to(origin: str, prefix: str) -> Handler:
    """A handler forwarding ``{prefix}/...`` to ``{origin}/...``, streaming the answer back."""

    async def handle(conn: Connection) -> None:
        request = await conn.read_request()
        if not request.path.startswith(prefix + "/"):
            await conn.send_json(404, {"detail": "Not Found"})
            return
        headers = {
            name: value
            for name, value in request.headers.items()
            if name in ("authorization", "content-type", "accept")
        }
        url = origin + request.path[len(prefix) :]
        async with (
            httpx.AsyncClient(timeout=60) as client,
            client.stream(request.method, url, headers=headers, content=request.body) as answer,
        ):
            kept = {"Content-Type": answer.headers.get("content-type", "text/plain")}
            await conn.send_head(answer.status_code, kept)
            async for data in answer.aiter_raw():
                await conn.send_body(data)
        await conn.finish()

    return handle
