"""Helpers for the web app tests: a scripted engine (for flow logic a 135M model cannot be
steered through), the app, and signed-in clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from openwen.chat.service import ChatService
from openwen.config import Settings
from openwen.engines.base import Capabilities, ChatRequest, ModelInfo
from openwen.errors import ContextLengthError
from openwen.messages import Done, ReasoningDelta, StreamEvent, TextDelta, Usage
from openwen.server.webapp import install

PASSWORD = "correct horse battery"


@dataclass
class ScriptedEngine:
    """Yields ``script`` (text pieces, ``("reasoning", text)``, an exception, or ``"WAIT"`` to
    block until ``release()``), then Done. Records every request."""

    script: list[Any] = field(default_factory=lambda: ["Hello", " there."])
    name: str = "scripted"
    capabilities: Capabilities = field(default_factory=Capabilities)
    requests: list[ChatRequest] = field(default_factory=list)
    max_messages: int | None = None  # more messages than this: a context length error
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
        produced = 0
        for item in self.script:
            if item == "WAIT":
                await self._gate.wait()
            elif isinstance(item, BaseException):
                raise item
            elif isinstance(item, tuple):
                yield ReasoningDelta(item[1])
            else:
                produced += 1
                yield TextDelta(item)
        yield Done("stop", usage=Usage(prompt_tokens=7, completion_tokens=produced))

    def count_tokens(self, request: ChatRequest) -> int:
        return 0

    async def aclose(self) -> None:
        pass


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


def make_app(settings: Settings, service: ChatService, *, save_interval: float = 0.05) -> FastAPI:
    app = FastAPI()
    install(app, settings, service, save_interval=save_interval)
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
