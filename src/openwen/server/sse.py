"""Streaming framing, in one place: payloads in, bytes on the wire out.

Every streaming face of the server (each API dialect, the web app) turns the answer's events into
JSON payloads with a *renderer* and hands them to :func:`event_stream`, which frames them, polls
for shutdown, maps a failure to the dialect's in-stream error, and closes the answer when the
client goes away. Three framings cover every dialect:

- :data:`OPENAI_SSE`: ``data: {json}\\n\\n`` per payload and ``data: [DONE]\\n\\n`` after a
  successful end (Chat Completions, legacy Completions);
- :data:`TYPED_SSE`: ``event: <payload["type"]>\\ndata: {json}\\n\\n`` with no terminator
  (OpenAI Responses, Anthropic Messages);
- :data:`NDJSON`: one JSON object per line, ``application/x-ndjson`` (Ollama).

A renderer (:class:`Renderer`) is a small stateful object for one answer: ``first()`` payloads
before any event, ``for_event(event)`` per event, ``final(done)`` at the end, ``error(exc)`` when
the answer fails after the first payload went out. It never does I/O.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from openwen.errors import EngineError, OpenwenError
from openwen.messages import Done, TextDelta

log = logging.getLogger(__name__)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
DONE = b"data: [DONE]\n\n"


def dumps(payload: Any) -> bytes:
    """Compact UTF-8 JSON (no ASCII escaping: the stream is UTF-8)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def frame(payload: dict[str, Any], *, event: str | None = None) -> bytes:
    """One SSE event: ``data: {json}``, preceded by ``event: NAME`` when named."""
    head = b"event: " + event.encode("utf-8") + b"\n" if event else b""
    return head + b"data: " + dumps(payload) + b"\n\n"


@dataclass(frozen=True)
class Framing:
    """How payloads go on the wire: SSE (named by ``type`` or not) or NDJSON."""

    media_type: str
    named: bool = False  # SSE ``event:`` line from the payload's ``type``
    lines: bool = False  # NDJSON instead of SSE
    end: bytes = b""  # written after a successful end

    def encode(self, payload: dict[str, Any]) -> bytes:
        if self.lines:
            return dumps(payload) + b"\n"
        name = payload.get("type") if self.named else None
        return frame(payload, event=name if isinstance(name, str) else None)

    @property
    def headers(self) -> dict[str, str]:
        return dict(SSE_HEADERS)


OPENAI_SSE = Framing("text/event-stream", end=DONE)
TYPED_SSE = Framing("text/event-stream", named=True)
NDJSON = Framing("application/x-ndjson", lines=True)


class Renderer(Protocol):
    """Turns one answer's events into payloads (see the module docstring)."""

    framing: Framing

    def first(self) -> list[dict[str, Any]]: ...

    def for_event(self, event: Any) -> list[dict[str, Any]]: ...

    def final(self, done: Done) -> list[dict[str, Any]]: ...

    def error(self, exc: OpenwenError) -> list[dict[str, Any]]: ...


async def event_stream(
    first: Any,
    events: AsyncIterator[Any],
    renderer: Renderer,
    *,
    on_done: Callable[[Done], None] = lambda done: None,
    stopping: Callable[[], OpenwenError | None] = lambda: None,
) -> AsyncIterator[bytes]:
    """The framed stream of an answer whose ``first`` event was already read from ``events``.

    ``stopping`` is polled after each event: when it returns an error (the server is shutting
    down), that error ends the stream. A failure becomes the renderer's error payloads and ends
    the stream without the framing's terminator. Closing this iterator closes ``events``, which
    cancels the generation.
    """
    framing = renderer.framing
    try:
        for payload in renderer.first():
            yield framing.encode(payload)
        event = first
        text_frame = getattr(renderer, "text_frame", None)  # optional hot path: framed bytes
        while not isinstance(event, Done):
            if text_frame is not None and type(event) is TextDelta and not event.logprobs:
                yield text_frame(event.text)
            else:
                for payload in renderer.for_event(event):
                    yield framing.encode(payload)
            if (stop := stopping()) is not None:
                for payload in renderer.error(stop):
                    yield framing.encode(payload)
                return
            event = await anext(events)
        on_done(event)
        for payload in renderer.final(event):
            yield framing.encode(payload)
        if framing.end:
            yield framing.end
    except StopAsyncIteration:
        failure = EngineError("the engine ended the answer without finishing it")
        for payload in renderer.error(failure):
            yield framing.encode(payload)
    except OpenwenError as exc:
        log.warning("stream failed: %s", exc.message)
        for payload in renderer.error(exc):
            yield framing.encode(payload)
    except Exception:
        log.exception("stream failed")
        failure = EngineError("internal error while generating the answer")
        for payload in renderer.error(failure):
            yield framing.encode(payload)
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


async def framed(payloads: AsyncIterator[dict[str, Any]], framing: Framing
                 ) -> AsyncIterator[bytes]:
    """Payloads that are already rendered (an answer that outlives its request, such as a
    background response), framed; closing this closes ``payloads``."""
    try:
        async for payload in payloads:
            yield framing.encode(payload)
    finally:
        aclose = getattr(payloads, "aclose", None)
        if aclose is not None:
            await aclose()

