"""The request-body size limit, enforced on the bytes actually received.

``Content-Length`` is checked first, but a chunked body (no length) or one that lies about its
length is counted as it streams in. Over the limit the client gets a 413 OpenAI error. So that the
client reliably reads that answer (instead of a reset connection while it is still sending), the
rest of the body is read and discarded first, up to ``drain_limit`` bytes; past that the
connection is simply closed after the answer.

Paths in ``exempt`` (a set the app may fill after construction, e.g. a document upload route that
streams and counts its own body) are not limited here.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openwen.server.errors import BodyTooLarge, error_body

DRAIN_LIMIT = 128 * 1024 * 1024


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int, drain_limit: int = DRAIN_LIMIT,
                 exempt: Collection[str] = ()):
        self.app = app
        self.max_bytes = max_bytes
        self.drain_limit = drain_limit
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exempt:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            if declared <= self.drain_limit:
                await _drain(receive, self.drain_limit)
            await self._reject(send, scope.get("path", ""))
            return
        state = {"received": 0, "started": False}

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_bytes:
                    if message.get("more_body", False):
                        await _drain(receive, self.drain_limit)
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if state["started"]:
                raise
            await self._reject(send, scope.get("path", ""))

    async def _reject(self, send: Send, path: str) -> None:
        body = json.dumps(error_body(
            413, f"the request body is larger than the limit of {self.max_bytes} bytes",
            code="payload_too_large", path=path)).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        ]})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _drain(receive: Receive, limit: int) -> None:
    """Read and discard the rest of the body (at most ``limit`` bytes)."""
    seen = 0
    while seen <= limit:
        message: dict[str, Any] = dict(await receive())
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return
