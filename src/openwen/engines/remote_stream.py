"""Read an OpenAI chat-completions SSE stream into openwen stream events.

:func:`iter_sse_batches` splits the byte stream into server-sent events (``data:`` lines joined
until a blank line; ``:`` comments such as keep-alive pings skipped). :class:`ChunkReader` turns
each ``chat.completion.chunk`` into events: text and reasoning deltas as they come, tool calls once
complete (accumulated by ``index`` and emitted when ``finish_reason`` arrives or the stream ends),
and a final :class:`Done` with usage, timings and the finish reason.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from openwen.errors import UpstreamError
from openwen.messages import (
    Done,
    FinishReason,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    Timings,
    TokenLogprob,
    ToolCall,
    ToolCallEvent,
    Usage,
)

FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "eos": "stop",
    "end_turn": "stop",
    "length": "length",
    "max_tokens": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
}


class SseEvent(NamedTuple):
    """One server-sent event: its ``data`` lines joined by newlines (bytes: the JSON parser reads
    them as they are) and its ``event`` field."""

    data: bytes
    event: str | None = None


async def iter_sse_batches(chunks: AsyncIterator[bytes]) -> AsyncGenerator[list[SseEvent], None]:
    """Server-sent events straight from the response's byte chunks (LF or CRLF line ends), as
    one list per chunk read: the relay's hot path, without a text decoder and a line iterator in
    between. An upstream that outpaces the relay hands it many events per read; they travel on
    together (see :func:`merge_deltas`), so the cost is per read rather than per token.

    Between events (nothing half-read) and with LF line ends, a read is cut at blank lines in
    one call and each ``data: ...`` event taken whole; anything else goes line by line."""
    pending = b""
    lines = _SseLines()
    async for raw in chunks:
        buffer = pending + raw if pending else raw
        batch: list[SseEvent] = []
        if lines.idle and b"\r" not in buffer:
            blocks = buffer.split(b"\n\n")
            pending = blocks.pop()
            for block in blocks:
                if block.startswith(b"data: ") and b"\n" not in block:
                    batch.append(SseEvent(block[6:]))
                elif block:
                    lines.feed_block(block, batch)
        else:
            split = buffer.split(b"\n")
            pending = split.pop()
            for line in split:
                lines.feed(line, batch)
        if batch:
            yield batch
    batch = []
    for line in pending.split(b"\n"):
        lines.feed(line, batch)
    lines.feed(b"", batch)  # the stream's end ends the last event
    if batch:
        yield batch


class _SseLines:
    """The line-by-line state of :func:`iter_sse_batches`: an event's ``data`` and ``event``."""

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.event: str | None = None

    @property
    def idle(self) -> bool:
        return not self.data and self.event is None

    def feed_block(self, block: bytes, batch: list[SseEvent]) -> None:
        """One whole event (its lines, without the blank line that ended it)."""
        for line in block.split(b"\n"):
            self.feed(line, batch)
        self.feed(b"", batch)

    def feed(self, line: bytes, batch: list[SseEvent]) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if line.startswith(b"data:"):
            self.data.append(line[6:] if line.startswith(b"data: ") else line[5:])
        elif not line:
            if self.data:
                batch.append(SseEvent(b"\n".join(self.data), self.event))
            self.data, self.event = [], None
        elif line.startswith(b"event:"):
            self.event = line[6:].strip().decode("utf-8", "replace")
        # ":" comments (keep-alive pings) and other fields are skipped


def merge_deltas(events: list[StreamEvent]) -> list[StreamEvent]:
    """Consecutive text deltas (and consecutive reasoning deltas) joined into one.

    Applied to the events of one read: when the upstream is faster than the relay, what piled up
    goes on as one delta (one chunk to the client instead of dozens), which is what keeps a
    gateway's cost per read instead of per token. Text and logprobs are kept whole and in order.
    """
    if len(events) < 2:
        return events
    merged: list[StreamEvent] = []
    run: list[StreamEvent] = []
    for event in events:
        if run and type(event) is not type(run[0]):
            merged.append(_joined(run))
            run = []
        if isinstance(event, TextDelta | ReasoningDelta):
            run.append(event)
        else:
            merged.append(event)
    if run:
        merged.append(_joined(run))
    return merged


def _joined(run: list[StreamEvent]) -> StreamEvent:
    """One delta holding a run of deltas of one kind."""
    if len(run) == 1:
        return run[0]
    text = "".join(event.text for event in run)  # type: ignore[union-attr]
    if isinstance(run[0], ReasoningDelta):
        return ReasoningDelta(text)
    logprobs = tuple(lp for event in run for lp in event.logprobs)  # type: ignore[union-attr]
    return TextDelta(text, logprobs=logprobs)


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)

    def complete(self) -> ToolCall:
        call_id = self.id or f"call_{uuid.uuid4().hex[:24]}"
        return ToolCall(id=call_id, name=self.name, arguments="".join(self.arguments) or "{}")


class ChunkReader:
    """Accumulates one streamed answer. Feed it parsed chunks, then call :meth:`finish`.

    ``started`` is the ``time.perf_counter()`` reading when the request was made.
    ``estimate_prompt`` gives the prompt size when the upstream reports no usage.
    """

    def __init__(self, started: float, estimate_prompt: Callable[[], int]):
        self.started = started
        self.estimate_prompt = estimate_prompt
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.upstream_timings: dict[str, Any] = {}
        self.generated_chunks = 0
        self.first_token_at: float | None = None
        self.last_token_at: float | None = None
        self._partials: dict[int, _PartialCall] = {}
        self._calls_emitted = 0

    def feed(self, chunk: dict[str, Any]) -> list[StreamEvent]:
        """Events carried by one chunk. Raises :class:`UpstreamError` for an ``error`` event."""
        if "error" in chunk:
            raise UpstreamError(f"the upstream failed mid-answer: {_error_text(chunk['error'])}")
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        if isinstance(chunk.get("timings"), dict):
            self.upstream_timings = chunk["timings"]
        events: list[StreamEvent] = []
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                events.extend(self._read_choice(choice))
        return events

    def feed_all(self, chunks: list[dict[str, Any]], events: list[StreamEvent]) -> None:
        """Append the events of one read's chunks to ``events``: a run of plain text chunks (most
        of an answer) becomes one :class:`TextDelta`, with no event per token; any other chunk
        goes through :meth:`feed`. On an ``error`` chunk :class:`UpstreamError` is raised with
        what came before it already in ``events``."""
        texts: list[str] = []
        try:
            for chunk in chunks:
                text = plain_text(chunk)
                if text is not None:
                    texts.append(text)
                    continue
                if texts:
                    events.append(self._text_run(texts))
                    texts = []
                events.extend(self.feed(chunk))
        finally:
            if texts:
                events.append(self._text_run(texts))

    def _text_run(self, texts: list[str]) -> TextDelta:
        self._mark_token()
        self.generated_chunks += len(texts) - 1
        return TextDelta("".join(texts))

    def _read_choice(self, choice: dict[str, Any]) -> list[StreamEvent]:
        # A non-streamed answer carries "message" instead of "delta"; read it the same way.
        delta = choice.get("delta") or choice.get("message") or {}
        events: list[StreamEvent] = []
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            events.append(ReasoningDelta(reasoning))
        content = delta.get("content")
        if isinstance(content, str) and content:
            events.append(TextDelta(content, logprobs=_logprobs(choice.get("logprobs"))))
        for part in delta.get("tool_calls") or ():
            self._add_tool_delta(part)
        if events or delta.get("tool_calls"):
            self._mark_token()
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]
            events.extend(self._flush_calls())
        return events

    def _mark_token(self) -> None:
        now = time.perf_counter()
        self.generated_chunks += 1
        if self.first_token_at is None:
            self.first_token_at = now
        self.last_token_at = now

    def _add_tool_delta(self, part: dict[str, Any]) -> None:
        index = part.get("index")
        if not isinstance(index, int):
            index = self._guess_index(part.get("id"))
        partial = self._partials.setdefault(index, _PartialCall())
        if part.get("id") and not partial.id:
            partial.id = part["id"]
        function = part.get("function") or {}
        if function.get("name") and not partial.name:
            partial.name = function["name"]
        arguments = function.get("arguments")
        if isinstance(arguments, dict):
            arguments = json.dumps(arguments, ensure_ascii=False)
        if isinstance(arguments, str):
            partial.arguments.append(arguments)

    def _guess_index(self, call_id: str | None) -> int:
        """For upstreams that omit ``index``: a new id starts a new call, else continue the last."""
        known = {p.id: i for i, p in self._partials.items()}
        if call_id and call_id in known:
            return known[call_id]
        if call_id or not self._partials:
            return self._calls_emitted + len(self._partials)
        return max(self._partials)

    def _flush_calls(self) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for index in sorted(self._partials):
            call = self._partials[index].complete()
            events.append(ToolCallEvent(index=self._calls_emitted, call=call))
            self._calls_emitted += 1
        self._partials.clear()
        return events

    def finish(self) -> list[StreamEvent]:
        """Tool calls still pending, then the :class:`Done` event."""
        events = self._flush_calls()
        events.append(Done(self._finish_reason(), self._usage(), self._timings()))
        return events

    def _finish_reason(self) -> FinishReason:
        reason = FINISH_REASONS.get(self.finish_reason or "", "stop")
        if self._calls_emitted and reason == "stop":
            return "tool_calls"
        return reason

    def _usage(self) -> Usage:
        if self.usage is None:
            # Best effort: most upstreams stream one token per chunk.
            return Usage(self.estimate_prompt(), self.generated_chunks, 0)
        details = self.usage.get("prompt_tokens_details") or {}
        cached = details.get("cached_tokens") or self.upstream_timings.get("cache_n") or 0
        return Usage(
            prompt_tokens=int(self.usage.get("prompt_tokens") or 0),
            completion_tokens=int(self.usage.get("completion_tokens") or 0),
            cached_tokens=int(cached),
        )

    def _timings(self) -> Timings:
        end = time.perf_counter()
        first = self.first_token_at or end
        ttft = (first - self.started) * 1000
        decode = ((self.last_token_at or first) - first) * 1000
        prompt = self.upstream_timings.get("prompt_ms")
        return Timings(
            prompt_ms=float(prompt) if isinstance(prompt, int | float) else ttft,
            decode_ms=decode,
            ttft_ms=ttft,
        )


def plain_text(chunk: dict[str, Any]) -> str | None:
    """The text of a chunk that carries nothing but a content delta of choice 0 (no reasoning,
    tool call, logprobs, finish reason, usage, timings or error), else None."""
    choices = chunk.get("choices")
    if (not isinstance(choices, list) or len(choices) != 1 or "error" in chunk
            or chunk.get("usage") is not None or "timings" in chunk):
        return None
    choice = choices[0]
    if (not isinstance(choice, dict) or choice.get("index", 0) != 0
            or choice.get("finish_reason") or choice.get("logprobs") is not None):
        return None
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        return None
    content = delta.get("content")
    if (not isinstance(content, str) or not content or delta.get("tool_calls")
            or delta.get("reasoning_content") or delta.get("reasoning")):
        return None
    return content


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or json.dumps(error))
    return str(error)


def _logprobs(data: Any) -> tuple[TokenLogprob, ...]:
    if not isinstance(data, dict) or not isinstance(data.get("content"), list):
        return ()
    return tuple(
        TokenLogprob(
            token=item.get("token", ""),
            logprob=float(item.get("logprob", 0.0)),
            bytes=item.get("bytes"),
            top=tuple(
                (top.get("token", ""), float(top.get("logprob", 0.0)))
                for top in item.get("top_logprobs") or ()
            ),
        )
        for item in data["content"]
        if isinstance(item, dict)
    )
