"""A streaming response that writes every frame ready at once in one send.

A relayed stream gets its frames in bursts: one read from the upstream often carries many
events, and openwen turns each into a frame without waiting. A plain ``StreamingResponse`` makes
one ``send`` (one socket write) per frame, which under load is most of the per-token cost. Here
the body is read by its own task into a small buffer, and the sender writes everything buffered
in one ``send``: one frame at a time when the stream is slow (no added latency), many when it is
fast. At most ``MAX_PENDING`` frames wait (then the body waits for the client: backpressure).
Closing the response (the client went away) cancels the body, which cancels the generation.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Send

from openwen import stage_trace

MAX_PENDING = 256


class CoalescingStreamingResponse(StreamingResponse):
    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})
        buffer: list[bytes] = []
        ready, space = asyncio.Event(), asyncio.Event()
        space.set()
        outcome: dict[str, Any] = {"done": False, "error": None}

        async def produce() -> None:
            try:
                async for chunk in self.body_iterator:
                    buffer.append(chunk if isinstance(chunk, bytes) else bytes(chunk)
                                  if isinstance(chunk, memoryview) else chunk.encode(self.charset))
                    ready.set()
                    if len(buffer) >= MAX_PENDING:
                        space.clear()
                        await space.wait()
            except Exception as exc:  # re-raised by the sender
                outcome["error"] = exc
            finally:
                outcome["done"] = True
                ready.set()

        producer = asyncio.create_task(produce())
        try:
            while True:
                await ready.wait()
                ready.clear()
                if buffer:
                    body = b"".join(buffer) if len(buffer) > 1 else buffer[0]
                    buffer.clear()
                    space.set()
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                    stage_trace.mark("first_send")
                if outcome["done"] and not buffer:
                    break
        finally:
            if not producer.done():
                producer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await producer
            stage_trace.finish()
        if outcome["error"] is not None:
            raise outcome["error"]
        await send({"type": "http.response.body", "body": b"", "more_body": False})
