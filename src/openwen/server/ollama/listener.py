"""The Ollama port (``ollama_port``, e.g. Ollama's default 11434): a second listener of the same
app, for clients that assume an Ollama server and cannot be pointed elsewhere.

Requests that arrive on that port see what an Ollama server shows: ``GET /`` answers "Ollama is
running", the Ollama routes (``/api/chat`` ...) and the OpenAI-compatible ``/v1`` routes (Ollama
serves those too) work as on the main port; everything else (the web app, its own ``/api/...``
routes, ``/docs``) is a 404 in Ollama's error shape. It is the same app behind the same request
guard and API-key rules, bound on the same host as the main port (so loopback only unless the
server is configured to listen beyond it, where keys are required on both ports).
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

from openwen.server.ollama import PATHS

RUNNING = b"Ollama is running"


def served_on_ollama_port(path: str) -> bool:
    return path in PATHS or path == "/v1" or path.startswith("/v1/")


class OllamaPort:
    """The middleware: filters what the Ollama port serves (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, port: int):
        self.app = app
        self.port = port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        if scope["type"] != "http" or not server or server[1] != self.port:
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if served_on_ollama_port(path):
            await self.app(scope, receive, send)
        elif path == "/" and scope.get("method") in ("GET", "HEAD"):
            await _reply(send, 200, "text/plain; charset=utf-8", RUNNING,
                         head=scope.get("method") == "HEAD")
        else:
            body = json.dumps({"error": f"404 page not found: {path[:200]}"}).encode()
            await _reply(send, 404, "application/json", body)


async def _reply(send: Send, status: int, content_type: str, body: bytes, *,
                 head: bool = False) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type.encode()),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": b"" if head else body})
