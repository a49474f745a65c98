"""The answer path's events as Anthropic's: the ``message`` object, or the stream
``message_start``, ``content_block_start`` / ``_delta`` / ``_stop`` per block (text, thinking,
tool_use), ``message_delta`` (stop reason, usage) and ``message_stop``; errors as ``error``."""

from __future__ import annotations

import json
import uuid
from typing import Any

from openwen.errors import OpenwenError
from openwen.messages import Done, ReasoningDelta, TextDelta, ToolCallEvent, Usage
from openwen.server.sse import TYPED_SSE

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                "cancelled": "end_turn"}
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
               403: "permission_error", 404: "not_found_error", 413: "request_too_large",
               415: "invalid_request_error", 429: "rate_limit_error", 503: "overloaded_error"}


def error_type(status: int) -> str:
    return ERROR_TYPES.get(status, "api_error")


def anthropic_error(status: int, message: str, type_: str, param: str | None,
                    code: str | None) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type(status), "message": message}}


def new_id() -> str:
    return f"msg_{uuid.uuid4().hex[:24]}"


def usage(u: Usage) -> dict[str, Any]:
    return {"input_tokens": u.prompt_tokens - u.cached_tokens,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": u.cached_tokens,
            "output_tokens": u.completion_tokens}


def stop_reason(done: Done) -> str:
    """Anthropic's stop reason. A stop sequence reads as ``end_turn``: the engines strip the
    stop string without saying which one matched."""
    return STOP_REASONS.get(done.finish_reason, "end_turn")


def _tool_block(event: ToolCallEvent) -> dict[str, Any]:
    try:
        arguments = json.loads(event.call.arguments or "{}")
    except ValueError:
        arguments = {"_raw": event.call.arguments}
    return {"type": "tool_use", "id": event.call.id, "name": event.call.name,
            "input": arguments if isinstance(arguments, dict) else {"value": arguments}}


def message_body(model: str, events: list[Any]) -> dict[str, Any]:
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    content: list[dict[str, Any]] = []
    if reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    if text or not any(isinstance(e, ToolCallEvent) for e in events):
        content.append({"type": "text", "text": text})
    content += [_tool_block(e) for e in events if isinstance(e, ToolCallEvent)]
    done = events[-1]
    assert isinstance(done, Done)
    return {"id": new_id(), "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop_reason(done), "stop_sequence": None,
            "usage": usage(done.usage)}


class MessageStream:
    """One streamed message; a block opens when its first delta arrives and closes when
    another kind starts or the message ends."""

    framing = TYPED_SSE

    def __init__(self, model: str):
        self.model = model
        self.id = new_id()
        self.index = -1
        self.open: str | None = None  # the kind of the open block

    def first(self) -> list[dict[str, Any]]:
        message: dict[str, Any] = {
            "id": self.id, "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0}}
        return [{"type": "message_start", "message": message}, {"type": "ping"}]

    def _close(self) -> list[dict[str, Any]]:
        if self.open is None:
            return []
        out: list[dict[str, Any]] = []
        if self.open == "thinking":
            out.append({"type": "content_block_delta", "index": self.index,
                        "delta": {"type": "signature_delta", "signature": ""}})
        out.append({"type": "content_block_stop", "index": self.index})
        self.open = None
        return out

    def _start(self, kind: str, block: dict[str, Any]) -> list[dict[str, Any]]:
        out = self._close()
        self.index += 1
        self.open = kind
        out.append({"type": "content_block_start", "index": self.index, "content_block": block})
        return out

    def for_event(self, event: Any) -> list[dict[str, Any]]:
        if isinstance(event, TextDelta):
            out = [] if self.open == "text" else self._start("text", {"type": "text", "text": ""})
            return [*out, {"type": "content_block_delta", "index": self.index,
                           "delta": {"type": "text_delta", "text": event.text}}]
        if isinstance(event, ReasoningDelta):
            out = [] if self.open == "thinking" else self._start(
                "thinking", {"type": "thinking", "thinking": "", "signature": ""})
            return [*out, {"type": "content_block_delta", "index": self.index,
                           "delta": {"type": "thinking_delta", "thinking": event.text}}]
        if isinstance(event, ToolCallEvent):
            block = {**_tool_block(event), "input": {}}
            out = self._start("tool_use", block)
            out.append({"type": "content_block_delta", "index": self.index,
                        "delta": {"type": "input_json_delta",
                                  "partial_json": json.dumps(_tool_block(event)["input"],
                                                             ensure_ascii=False)}})
            return [*out, *self._close()]
        return []

    def final(self, done: Done) -> list[dict[str, Any]]:
        out = self._close()
        if self.index < 0:  # an empty answer still has its (empty) text block
            out += self._start("text", {"type": "text", "text": ""}) + self._close()
        return [*out, {"type": "message_delta",
                       "delta": {"stop_reason": stop_reason(done), "stop_sequence": None},
                       "usage": usage(done.usage)},
                {"type": "message_stop"}]

    def error(self, exc: OpenwenError) -> list[dict[str, Any]]:
        return [{"type": "error", "error": {"type": error_type(exc.status),
                                            "message": exc.message}}]
