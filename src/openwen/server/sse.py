"""Server-sent events the OpenAI way: engine events in, ``data: {json}\\n\\n`` frames out.

A chat stream is, in order:

1. a first chunk whose delta is ``{"role": "assistant", "content": ""}`` (role on no other chunk);
2. one chunk per event: ``{"content": ...}`` with ``logprobs`` when asked, reasoning as
   ``{"reasoning_content": t, "reasoning": t}`` (the same text under both names: vLLM, DeepSeek and
   most clients read ``reasoning_content``, newer vLLM and OpenRouter ``reasoning``; read one),
   and per tool call two chunks, ``{index, id, type, function: {name, arguments: ""}}`` then
   ``{index, function: {arguments}}``;
3. a chunk with an empty delta and the ``finish_reason``;
4. with ``stream_options.include_usage``, a chunk with ``choices: []`` and the usage totals (every
   earlier chunk then carries ``"usage": null``);
5. ``data: [DONE]``.

Every chunk has the same ``id`` and ``created``. A failure after the first chunk becomes one data
event ``{"error": {...}}`` and the stream ends (no ``[DONE]``). ``/v1/completions`` streams
``text_completion`` chunks the same way, without the role chunk.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from openwen import __version__
from openwen.errors import EngineError, OpenwenError
from openwen.messages import (
    Done,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    TokenLogprob,
    ToolCallEvent,
    Usage,
)

log = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"
SYSTEM_FINGERPRINT = f"openwen-{__version__}"
FINISH_REASONS = {"stop": "stop", "length": "length", "tool_calls": "tool_calls"}
_SPLIT = "\ue000openwen-text\ue000"  # a private-use marker, split out of a template
_SPLIT_JSON = json.dumps(_SPLIT, ensure_ascii=False).encode("utf-8")


def frame(payload: dict[str, Any]) -> bytes:
    """One SSE data event."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return b"data: " + text.encode("utf-8") + b"\n\n"


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def finish_reason(done: Done) -> str:
    """OpenAI's finish reason for an engine's (a cancelled answer reads as ``stop``)."""
    return FINISH_REASONS.get(done.finish_reason, "stop")


def usage_dict(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


def finite(logprob: float) -> float:
    """JSON has no -Infinity: an impossible token reads as -9999.0, as in OpenAI's API."""
    return logprob if math.isfinite(logprob) else -9999.0


def token_logprob(lp: TokenLogprob) -> dict[str, Any]:
    """A chat ``logprobs.content`` entry."""
    return {
        "token": lp.token,
        "logprob": finite(lp.logprob),
        "bytes": lp.bytes if lp.bytes is not None else list(lp.token.encode("utf-8")),
        "top_logprobs": [
            {"token": tok, "logprob": finite(value), "bytes": list(tok.encode("utf-8"))}
            for tok, value in lp.top
        ],
    }


class Chunks(Protocol):
    """Turns one answer's events into chunk objects."""

    def first(self) -> dict[str, Any] | None: ...

    def for_event(self, event: StreamEvent) -> list[dict[str, Any]]: ...

    def final(self, done: Done) -> list[dict[str, Any]]: ...


class ChatChunks:
    """``chat.completion.chunk`` objects of one streamed chat answer."""

    def __init__(self, *, model: str, include_usage: bool, chunk_id: str | None = None,
                 created: int | None = None):
        self.id = chunk_id or new_id("chatcmpl")
        self.model = model
        self.created = created or int(time.time())
        self.include_usage = include_usage
        self._text_template: list[bytes] | None = None

    def _chunk(self, delta: dict[str, Any], *, finish: str | None = None,
               logprobs: dict[str, Any] | None = None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [{"index": 0, "delta": delta, "logprobs": logprobs,
                         "finish_reason": finish}],
        }
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def first(self) -> dict[str, Any]:
        return self._chunk({"role": "assistant", "content": ""})

    def text_frame(self, text: str) -> bytes:
        """The frame of a plain content delta (no logprobs), byte for byte what
        ``frame(self._chunk({"content": text}))`` gives, from a template made once per answer:
        the hot path of a relayed stream encodes only the text."""
        if self._text_template is None:
            whole = frame(self._chunk({"content": _SPLIT}))
            self._text_template = whole.split(_SPLIT_JSON)
        head, tail = self._text_template
        return head + json.dumps(text, ensure_ascii=False).encode("utf-8") + tail

    def for_event(self, event: StreamEvent) -> list[dict[str, Any]]:
        if isinstance(event, TextDelta):
            logprobs = ({"content": [token_logprob(lp) for lp in event.logprobs],
                         "refusal": None} if event.logprobs else None)
            return [self._chunk({"content": event.text}, logprobs=logprobs)]
        if isinstance(event, ReasoningDelta):
            return [self._chunk({"reasoning_content": event.text, "reasoning": event.text})]
        if isinstance(event, ToolCallEvent):
            call = event.call
            head = {"index": event.index, "id": call.id, "type": "function",
                    "function": {"name": call.name, "arguments": ""}}
            body = {"index": event.index, "function": {"arguments": call.arguments}}
            return [self._chunk({"tool_calls": [head]}), self._chunk({"tool_calls": [body]})]
        return []

    def final(self, done: Done) -> list[dict[str, Any]]:
        chunks = [self._chunk({}, finish=finish_reason(done))]
        if self.include_usage:
            chunks.append({
                "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "system_fingerprint": SYSTEM_FINGERPRINT, "choices": [],
                "usage": usage_dict(done.usage),
            })
        return chunks


class CompletionChunks:
    """``text_completion`` chunks of one streamed ``/v1/completions`` answer."""

    def __init__(self, *, model: str, include_usage: bool, echo: str = "",
                 logprobs: bool = False):
        self.id = new_id("cmpl")
        self.model = model
        self.created = int(time.time())
        self.include_usage = include_usage
        self.echo = echo
        self.logprobs = logprobs
        self.offset = len(echo)

    def _chunk(self, text: str, *, finish: str | None = None,
               logprobs: dict[str, Any] | None = None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id, "object": "text_completion", "created": self.created,
            "model": self.model, "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [{"text": text, "index": 0, "logprobs": logprobs,
                         "finish_reason": finish}],
        }
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def first(self) -> dict[str, Any] | None:
        return self._chunk(self.echo) if self.echo else None

    def for_event(self, event: StreamEvent) -> list[dict[str, Any]]:
        if not isinstance(event, TextDelta):
            return []
        logprobs = None
        if self.logprobs:
            logprobs = completion_logprobs(event.logprobs, self.offset)
        self.offset += len(event.text)
        return [self._chunk(event.text, logprobs=logprobs)]

    def final(self, done: Done) -> list[dict[str, Any]]:
        chunks = [self._chunk("", finish=finish_reason(done))]
        if self.include_usage:
            chunks.append({
                "id": self.id, "object": "text_completion", "created": self.created,
                "model": self.model, "system_fingerprint": SYSTEM_FINGERPRINT, "choices": [],
                "usage": usage_dict(done.usage),
            })
        return chunks


def completion_logprobs(logprobs: tuple[TokenLogprob, ...] | list[TokenLogprob],
                        offset: int) -> dict[str, Any]:
    """The legacy completions ``logprobs`` object for some tokens starting at ``offset``."""
    offsets = []
    for lp in logprobs:
        offsets.append(offset)
        offset += len(lp.token)
    return {
        "tokens": [lp.token for lp in logprobs],
        "token_logprobs": [finite(lp.logprob) for lp in logprobs],
        "top_logprobs": [{tok: finite(v) for tok, v in lp.top} for lp in logprobs],
        "text_offset": offsets,
    }


async def event_stream(
    first: StreamEvent,
    events: AsyncIterator[StreamEvent],
    chunks: Chunks,
    *,
    on_done: Callable[[Done], None] = lambda done: None,
    stopping: Callable[[], OpenwenError | None] = lambda: None,
) -> AsyncIterator[bytes]:
    """SSE frames for an answer whose ``first`` event was already read from ``events``.

    ``stopping`` is polled after each event: when it returns an error (the server is shutting
    down), that error ends the stream. Closing this iterator closes ``events``, which cancels
    the generation.
    """
    try:
        head = chunks.first()
        if head is not None:
            yield frame(head)
        event = first
        text_frame = getattr(chunks, "text_frame", None)
        while not isinstance(event, Done):
            if text_frame is not None and type(event) is TextDelta and not event.logprobs:
                yield text_frame(event.text)
            else:
                for chunk in chunks.for_event(event):
                    yield frame(chunk)
            if (stop := stopping()) is not None:
                yield frame(stop.to_dict())
                return
            event = await anext(events)
        on_done(event)
        for chunk in chunks.final(event):
            yield frame(chunk)
        yield DONE
    except StopAsyncIteration:
        yield frame(EngineError("the engine ended the answer without finishing it").to_dict())
    except OpenwenError as exc:
        log.warning("stream failed: %s", exc.message)
        yield frame(exc.to_dict())
    except Exception:
        log.exception("stream failed")
        yield frame(EngineError("internal error while generating the answer").to_dict())
    finally:
        await _close(events)


async def _close(events: AsyncIterator[StreamEvent]) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()
