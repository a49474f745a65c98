"""Helpers for the API tests: a real uvicorn server on 127.0.0.1 (a free port) in a background
thread, and SSE parsing. Imported by the tests of this folder as ``serverkit``."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import uvicorn
from fastapi import FastAPI

from openwen.chat.service import ChatService
from openwen.config import Settings
from openwen.server.application import create_app


def server_settings(home: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"home": home, "n_ctx": 2048, "n_threads": 2, "n_batch": 512}
    values.update(overrides)
    return Settings(**values)


@dataclass
class RunningServer:
    app: FastAPI
    url: str
    server: uvicorn.Server

    @property
    def v1(self) -> str:
        return self.url + "/v1"

    @property
    def service(self) -> ChatService:
        service: ChatService = self.app.state.service
        return service

    def engine(self, name: str = "smollm2") -> Any:
        for engine in self.service.registry.loaded():
            if engine.name == name:
                return engine
        raise LookupError(name)

    def client(self, **kw: Any) -> openai.OpenAI:
        kw.setdefault("api_key", "unused")
        kw.setdefault("max_retries", 0)
        return openai.OpenAI(base_url=self.v1, **kw)

    def async_client(self, **kw: Any) -> openai.AsyncOpenAI:
        kw.setdefault("api_key", "unused")
        kw.setdefault("max_retries", 0)
        return openai.AsyncOpenAI(base_url=self.v1, **kw)


@contextlib.contextmanager
def running_server(settings: Settings, *, service: ChatService | None = None
                   ) -> Iterator[RunningServer]:
    """Serve ``create_app(settings)`` on 127.0.0.1 (a free port) until the block exits."""
    app = create_app(settings, service=service)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(600):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.05)
        assert server.started, "the test server did not start"
        yield RunningServer(app=app, url=f"http://127.0.0.1:{port}", server=server)
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()


def sse_events(lines: Iterator[str]) -> Iterator[str]:
    """The data payloads of an SSE stream (as sent: JSON text or ``[DONE]``)."""
    for line in lines:
        if line.startswith("data: "):
            yield line[len("data: "):]


def json_events(payloads: list[str]) -> list[dict[str, Any]]:
    return [json.loads(p) for p in payloads if p != "[DONE]"]
