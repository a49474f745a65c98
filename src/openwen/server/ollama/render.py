"""The answer path's events as Ollama's objects: one NDJSON line per delta, then a final object
with ``done: true``, ``done_reason`` and the counts and durations (nanoseconds)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from openwen.errors import OpenwenError
from openwen.messages import Done, ReasoningDelta, TextDelta, ToolCall, ToolCallEvent
from openwen.server.sse import NDJSON

DONE_REASONS = {"stop": "stop", "length": "length", "tool_calls": "stop", "cancelled": "stop"}


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def tool_call(call: ToolCall) -> dict[str, Any]:
    try:
        arguments: Any = json.loads(call.arguments) if call.arguments else {}
    except ValueError:
        arguments = call.arguments
    return {"function": {"name": call.name, "arguments": arguments}}


def stats(done: Done, started: float) -> dict[str, Any]:
    """The final object's counts and durations (nanoseconds, as Ollama reports them)."""
    t = done.timings
    ns = 1_000_000
    return {
        "done_reason": DONE_REASONS.get(done.finish_reason, "stop"),
        "total_duration": int((time.perf_counter() - started) * 1e9),
        "load_duration": int(t.queue_ms * ns),
        "prompt_eval_count": done.usage.prompt_tokens,
        "prompt_eval_duration": int(t.prompt_ms * ns),
        "eval_count": done.usage.completion_tokens,
        "eval_duration": int(t.decode_ms * ns),
    }


class _Lines:
    framing = NDJSON

    def __init__(self, model: str, started: float):
        self.model = model
        self.started = started

    def first(self) -> list[dict[str, Any]]:
        return []

    def error(self, exc: OpenwenError) -> list[dict[str, Any]]:
        return [{"error": exc.message}]


class ChatLines(_Lines):
    """``/api/chat`` stream: ``message`` deltas (content, thinking, tool_calls)."""

    def _line(self, message: dict[str, Any]) -> dict[str, Any]:
        return {"model": self.model, "created_at": now_iso(),
                "message": {"role": "assistant", **message}, "done": False}

    def for_event(self, event: Any) -> list[dict[str, Any]]:
        if isinstance(event, TextDelta):
            return [self._line({"content": event.text})]
        if isinstance(event, ReasoningDelta):
            return [self._line({"content": "", "thinking": event.text})]
        if isinstance(event, ToolCallEvent):
            return [self._line({"content": "", "tool_calls": [tool_call(event.call)]})]
        return []

    def final(self, done: Done) -> list[dict[str, Any]]:
        last = self._line({"content": ""})
        last["done"] = True
        return [{**last, **stats(done, self.started)}]


class GenerateLines(_Lines):
    """``/api/generate`` stream: ``response`` (and ``thinking``) deltas."""

    def _line(self, response: str, **more: Any) -> dict[str, Any]:
        return {"model": self.model, "created_at": now_iso(), "response": response,
                **more, "done": False}

    def for_event(self, event: Any) -> list[dict[str, Any]]:
        if isinstance(event, TextDelta):
            return [self._line(event.text)]
        if isinstance(event, ReasoningDelta):
            return [self._line("", thinking=event.text)]
        return []

    def final(self, done: Done) -> list[dict[str, Any]]:
        return [{**self._line(""), "done": True, "context": [], **stats(done, self.started)}]


def chat_response(model: str, events: list[Any], started: float) -> dict[str, Any]:
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if reasoning:
        message["thinking"] = reasoning
    calls = [tool_call(e.call) for e in events if isinstance(e, ToolCallEvent)]
    if calls:
        message["tool_calls"] = calls
    done = events[-1]
    assert isinstance(done, Done)
    return {"model": model, "created_at": now_iso(), "message": message, "done": True,
            **stats(done, started)}


def generate_response(model: str, events: list[Any], started: float) -> dict[str, Any]:
    out: dict[str, Any] = {
        "model": model, "created_at": now_iso(),
        "response": "".join(e.text for e in events if isinstance(e, TextDelta)),
    }
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    if reasoning:
        out["thinking"] = reasoning
    done = events[-1]
    assert isinstance(done, Done)
    return {**out, "done": True, "context": [], **stats(done, started)}
