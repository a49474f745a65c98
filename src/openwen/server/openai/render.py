"""OpenAI's wire shapes of an answer: stream chunks (Chat Completions, legacy Completions) and
the non-streaming response objects, from the answer path's events.

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
5. ``data: [DONE]`` (the framing, :data:`openwen.server.sse.OPENAI_SSE`).

Every chunk has the same ``id`` and ``created``. A failure after the first chunk becomes one data
event ``{"error": {...}}`` and the stream ends (no ``[DONE]``). ``/v1/completions`` streams
``text_completion`` chunks the same way, without the role chunk.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from typing import Any

from openwen import __version__
from openwen.errors import OpenwenError
from openwen.messages import (
    Done,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    TokenLogprob,
    ToolCallEvent,
    Usage,
)
from openwen.server.openai.protocol import (
    AssistantMessageOut,
    ChatChoice,
    ChatCompletionResponse,
    ChoiceLogprobs,
    CompletionChoice,
    CompletionLogprobs,
    CompletionResponse,
    FunctionCallOut,
    TokenLogprobOut,
    ToolCallOut,
    UsageInfo,
)
from openwen.server.sse import OPENAI_SSE, frame

SYSTEM_FINGERPRINT = f"openwen-{__version__}"
FINISH_REASONS = {"stop": "stop", "length": "length", "tool_calls": "tool_calls"}
_SPLIT = "\ue000openwen-text\ue000"  # a private-use marker, split out of a template
_SPLIT_JSON = json.dumps(_SPLIT, ensure_ascii=False).encode("utf-8")


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


class ChatChunks:
    """``chat.completion.chunk`` objects of one streamed chat answer."""

    framing = OPENAI_SSE

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

    def first(self) -> list[dict[str, Any]]:
        return [self._chunk({"role": "assistant", "content": ""})]

    def text_frame(self, text: str) -> bytes:
        """The frame of a plain content delta (no logprobs), byte for byte what
        ``frame(self._chunk({"content": text}))`` gives, from a template made once per answer:
        the hot path of a relayed stream encodes only the text."""
        if self._text_template is None:
            whole = frame(self._chunk({"content": _SPLIT}))
            self._text_template = whole.split(_SPLIT_JSON)
        head, tail = self._text_template
        return head + json.dumps(text, ensure_ascii=False).encode("utf-8") + tail

    def for_event(self, event: Any) -> list[dict[str, Any]]:
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

    def error(self, exc: OpenwenError) -> list[dict[str, Any]]:
        return [exc.to_dict()]


class CompletionChunks:
    """``text_completion`` chunks of one streamed ``/v1/completions`` answer."""

    framing = OPENAI_SSE

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

    def first(self) -> list[dict[str, Any]]:
        return [self._chunk(self.echo)] if self.echo else []

    def for_event(self, event: Any) -> list[dict[str, Any]]:
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

    def error(self, exc: OpenwenError) -> list[dict[str, Any]]:
        return [exc.to_dict()]


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


def chat_response(model: str, events: list[Any], *, with_logprobs: bool
                  ) -> ChatCompletionResponse:
    """The non-streaming response for a finished answer."""
    done = events[-1]
    assert isinstance(done, Done)
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta)) or None
    calls = [ToolCallOut(id=e.call.id, function=FunctionCallOut(name=e.call.name,
                                                                arguments=e.call.arguments))
             for e in events if isinstance(e, ToolCallEvent)]
    message = AssistantMessageOut(content=text if text or not calls else None,
                                  tool_calls=calls or None, reasoning_content=reasoning,
                                  reasoning=reasoning)
    logprobs = None
    if with_logprobs:
        entries = [TokenLogprobOut.model_validate(token_logprob(lp))
                   for e in events if isinstance(e, TextDelta) for lp in e.logprobs]
        logprobs = ChoiceLogprobs(content=entries)
    return ChatCompletionResponse(
        id=new_id("chatcmpl"),
        created=int(time.time()),
        model=model,
        choices=[ChatChoice(message=message, logprobs=logprobs,
                            finish_reason=finish_reason(done))],  # type: ignore[arg-type]
        usage=UsageInfo.model_validate(usage_dict(done.usage)),
        system_fingerprint=SYSTEM_FINGERPRINT,
    )


def completion_response(model: str, events: list[StreamEvent], *, echo: str,
                        with_logprobs: bool) -> CompletionResponse:
    """The non-streaming ``/v1/completions`` response for a finished answer."""
    done = events[-1]
    assert isinstance(done, Done)
    deltas = [e for e in events if isinstance(e, TextDelta)]
    logprobs = None
    if with_logprobs:
        tokens = [lp for d in deltas for lp in d.logprobs]
        logprobs = CompletionLogprobs.model_validate(completion_logprobs(tokens, len(echo)))
    choice = CompletionChoice(text=echo + "".join(d.text for d in deltas), logprobs=logprobs,
                              finish_reason=finish_reason(done))  # type: ignore[arg-type]
    return CompletionResponse(
        id=new_id("cmpl"), created=int(time.time()), model=model, choices=[choice],
        usage=UsageInfo.model_validate(usage_dict(done.usage)),
        system_fingerprint=SYSTEM_FINGERPRINT,
    )
