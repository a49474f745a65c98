"""Helpers for the web app tests: a scripted engine (for flow logic a 135M model cannot be
steered through, tool calls included), a rule-based one for a scripted live server, the
all-MiniLM-L6-v2 embedder loaded on first use, the app, and signed-in clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi import FastAPI
from fastapi.testclient import TestClient

from openwen.chat.service import ChatService
from openwen.config import Settings
from openwen.engines.base import Capabilities, ModelInfo
from openwen.errors import ContextLengthError
from openwen.messages import (
    Done,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    Usage,
)
from openwen.requests import ChatRequest
from openwen.server.webapp import install

PASSWORD = "correct horse battery"


@dataclass
class ScriptedEngine:
    """Yields a script (text pieces, ``("reasoning", text)``, ``("call", name, {args})`` for a
    tool call, an exception, or ``"WAIT"`` to block until ``release()``), then Done (finish
    reason ``tool_calls`` after a call). Each request takes the next of ``rounds`` while there
    are any, else ``script``. Records every request."""

    script: list[Any] = field(default_factory=lambda: ["Hello", " there."])
    rounds: list[list[Any]] = field(default_factory=list)
    name: str = "scripted"
    capabilities: Capabilities = field(default_factory=Capabilities)
    requests: list[ChatRequest] = field(default_factory=list)
    max_messages: int | None = None  # more messages than this: a context length error
    tools_fit: bool = True  # False: a request offering tools is a context length error
    _gate: asyncio.Event = field(default_factory=asyncio.Event)

    def models(self) -> list[ModelInfo]:
        return [ModelInfo(id=self.name)]

    def release(self) -> None:
        """Let a script waiting at ``"WAIT"`` go on (and not wait again)."""
        self._gate.set()

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        self.requests.append(request)
        if self.max_messages is not None and len(request.messages) > self.max_messages:
            raise ContextLengthError(len(request.messages) * 1000, self.max_messages * 1000)
        if request.tools and not self.tools_fit:
            raise ContextLengthError(3000, 2048)
        produced = calls = 0
        for item in self.script_for(request):
            if item == "WAIT":
                await self._gate.wait()
            elif isinstance(item, BaseException):
                raise item
            elif isinstance(item, tuple) and item[0] == "call":
                call_id = f"call_{len(self.requests)}_{calls}"
                yield ToolCallEvent(calls, ToolCall(call_id, item[1], json.dumps(item[2])))
                calls += 1
            elif isinstance(item, tuple):
                yield ReasoningDelta(item[1])
            else:
                produced += 1
                yield TextDelta(item)
        usage = Usage(prompt_tokens=7, completion_tokens=produced + calls)
        yield Done("tool_calls" if calls else "stop", usage=usage)

    def script_for(self, request: ChatRequest) -> list[Any]:
        return self.rounds.pop(0) if self.rounds else self.script

    def count_tokens(self, request: ChatRequest) -> int:
        return 0

    async def aclose(self) -> None:
        pass


PLOT = (
    "import matplotlib.pyplot as plt\n"
    "plt.plot([1, 2, 3], [1, 4, 9])\n"
    "plt.title('squares')\n"
    "plt.show()\n"
    "print('plotted')"
)


class RuleEngine(ScriptedEngine):
    """Answers by rules on the newest message, for a scripted live server: "calculate" calls
    the calculator, "write a note" the (side-effecting) write_file tool, "plot" the code
    interpreter, "save to memory" the remember tool; sources in the prompt get an answer citing
    [1]; a tool result is repeated."""

    def script_for(self, request: ChatRequest) -> list[Any]:
        if self.rounds:
            return self.rounds.pop(0)
        if not request.messages:  # a raw /v1/completions prompt
            return ["Hello", " there."]
        last = request.messages[-1]
        if last.role == "tool":
            return [f"The tool said: {' '.join((last.content or '').split())[:200]}"]
        text = (last.content or "").lower()
        if "sources from the user's documents" in text:
            return ["The rent is due on the first day of each month [1]."]
        if "calculate" in text:
            return [("call", "calculator", {"expression": "6*7"})]
        if "write a note" in text:
            return [("call", "write_file", {"path": "note.txt", "content": "hello"})]
        if "plot" in text:
            return [("call", "run_python", {"code": PLOT})]
        if "save to memory" in text:  # as a prompt injection would ask
            return [("call", "remember", {"fact": "The user prefers answers in French."})]
        return ["Hello", " there."]


class LazyMiniLM:
    """all-MiniLM-L6-v2 (a real local embedder), loaded on first use and shared by tests."""

    name = "all-minilm-l6-v2"

    def __init__(self) -> None:
        self._inner: Any = None
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            if self._inner is None:
                from openwen.knowledge import LocalEmbedder

                self._inner = LocalEmbedder.minilm()
        return self._inner.embed(texts)

    def close(self) -> None:
        if self._inner is not None:
            self._inner.close()


class ScriptedRegistry:
    def __init__(self, engine: ScriptedEngine):
        self.engine = engine
        self.default_model = engine.name

    async def get(self, model: str | None) -> ScriptedEngine:
        return self.engine

    async def list_models(self) -> list[ModelInfo]:
        return self.engine.models()

    def loaded(self) -> list[ScriptedEngine]:
        return [self.engine]

    async def aclose(self) -> None:
        pass


def make_app(
    settings: Settings,
    service: ChatService,
    *,
    save_interval: float = 0.05,
    embedder: Any = None,
) -> FastAPI:
    app = FastAPI()
    install(app, settings, service, save_interval=save_interval, embedder=embedder)
    return app


def csrf_of(client: TestClient) -> dict[str, str]:
    token = client.get("/api/session").json()["csrf_token"]
    return {"X-CSRF-Token": token}


def signup(client: TestClient, username: str, password: str = PASSWORD) -> dict[str, str]:
    """Sign ``client`` up; returns the CSRF header for its later requests."""
    r = client.post(
        "/api/auth/signup",
        json={"username": username, "password": password},
        headers=csrf_of(client),
    )
    assert r.status_code == 201, r.text
    return {"X-CSRF-Token": r.json()["csrf_token"]}


def login(client: TestClient, username: str, password: str = PASSWORD) -> dict[str, str]:
    r = client.post(
        "/api/auth/login",
        json={"username": username, "password": password},
        headers=csrf_of(client),
    )
    assert r.status_code == 200, r.text
    return {"X-CSRF-Token": r.json()["csrf_token"]}


def add_user(
    client: TestClient, headers: dict[str, str], username: str, password: str = PASSWORD
) -> dict[str, Any]:
    r = client.post(
        "/api/admin/users", json={"username": username, "password": password}, headers=headers
    )
    assert r.status_code == 201, r.text
    return dict(r.json()["user"])


def events(body: str) -> list[tuple[str, dict[str, Any]]]:
    """Parse an SSE body into (event, data) pairs."""
    out = []
    for block in body.strip().split("\n\n"):
        lines = block.split("\n")
        name = next(line[7:] for line in lines if line.startswith("event: "))
        data = json.loads("".join(line[6:] for line in lines if line.startswith("data: ")))
        out.append((name, data))
    return out


@dataclass
class Signed:
    """A signed-in client and its CSRF header."""

    client: TestClient
    headers: dict[str, str]

    def get(self, url: str, **kw: Any) -> Any:
        return self.client.get(url, **kw)

    def post(self, url: str, **kw: Any) -> Any:
        return self.client.post(url, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def patch(self, url: str, **kw: Any) -> Any:
        return self.client.patch(url, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def put(self, url: str, **kw: Any) -> Any:
        return self.client.put(url, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def delete(self, url: str, **kw: Any) -> Any:
        return self.client.delete(url, headers={**self.headers, **kw.pop("headers", {})}, **kw)


# -- a real server in a thread, for flows that need two requests at once ------------------------


@contextlib.contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Run ``app`` with uvicorn on 127.0.0.1 (a free port) in a thread; yields its URL."""
    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the test server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def sse_lines(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) pairs from the lines of a streaming SSE response, as they arrive."""
    name, data = "message", []
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif not line and data:
            yield name, json.loads("".join(data))
            name, data = "message", []
