"""Ollama requests into the shared :class:`~openwen.requests.ChatRequest` (the one place).

Model names: Ollama's ``name:tag`` (``qwen3:1.7b``) are openwen's catalog names already;
``:latest`` is Ollama's default tag and means the bare name. Tool calls carry no ids in Ollama's
messages, so each gets one here, and a ``tool`` message answers the latest call of its
``tool_name`` (or the latest call)."""

from __future__ import annotations

import json
from typing import Any

from openwen.errors import InvalidRequestError
from openwen.messages import Message, ToolCall
from openwen.requests import ChatRequest, Sampling
from openwen.server.ollama.protocol import (
    ChatMessage,
    ChatRequestBody,
    GenerateRequestBody,
    Options,
)


def model_name(name: str) -> str:
    """openwen's name for an Ollama model name (``smollm2:latest`` is ``smollm2``)."""
    name = name.strip()
    return name[: -len(":latest")] if name.endswith(":latest") else name


def sampling(options: Options | None) -> Sampling:
    o = options or Options.model_validate({})
    return Sampling(temperature=o.temperature, top_p=o.top_p, top_k=o.top_k, min_p=o.min_p,
                    presence_penalty=o.presence_penalty,
                    frequency_penalty=o.frequency_penalty, repeat_penalty=o.repeat_penalty,
                    seed=o.seed)


def max_tokens(options: Options | None) -> int | None:
    n = options.num_predict if options else None
    return n if n is not None and n > 0 else None  # -1 / -2: as long as the context allows


def stops(options: Options | None) -> tuple[str, ...]:
    stop = options.stop if options else None
    if stop is None:
        return ()
    return (stop,) if isinstance(stop, str) else tuple(s for s in stop if s)


def response_format(fmt: str | dict[str, Any] | None) -> dict[str, Any] | None:
    if fmt is None or fmt == "":
        return None
    if fmt == "json":
        return {"type": "json_object"}
    if isinstance(fmt, dict):
        return {"type": "json_schema", "json_schema": {"name": "format", "schema": fmt}}
    raise InvalidRequestError("format must be \"json\" or a JSON schema object", param="format")


def thinking(think: bool | str | None) -> bool | None:
    if think is None or isinstance(think, bool):
        return think
    return think.lower() not in ("", "none", "false", "off")


def _arguments(arguments: dict[str, Any] | str) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


def messages(items: list[ChatMessage]) -> tuple[Message, ...]:
    out: list[Message] = []
    calls: list[ToolCall] = []  # every call so far, for tool results to answer
    for i, m in enumerate(items):
        if m.images:
            raise InvalidRequestError("images are not supported by openwen's models yet",
                                      param=f"messages[{i}].images")
        if m.role == "tool":
            target = next((c for c in reversed(calls) if c.name == m.tool_name), None)
            target = target or (calls[-1] if calls else None)
            out.append(Message("tool", m.content or "",
                               tool_call_id=target.id if target else f"call_{i}",
                               name=m.tool_name or (target.name if target else None)))
            continue
        made = tuple(ToolCall(f"call_{i}_{j}", c.function.name, _arguments(c.function.arguments))
                     for j, c in enumerate(m.tool_calls or ()))
        calls.extend(made)
        out.append(Message(m.role, m.content or "",  # type: ignore[arg-type]
                           reasoning=m.thinking or None, tool_calls=made))
    return tuple(out)


def chat_request(body: ChatRequestBody) -> ChatRequest:
    if not body.messages:
        raise InvalidRequestError("messages must contain at least one message", param="messages")
    return ChatRequest(
        messages=messages(body.messages), model=model_name(body.model),
        tools=tuple(body.tools or ()), sampling=sampling(body.options),
        stop=stops(body.options), max_tokens=max_tokens(body.options),
        response_format=response_format(body.format), thinking=thinking(body.think))


def generate_request(body: GenerateRequestBody) -> ChatRequest:
    """``/api/generate``: the prompt as one user turn under the model's template (with
    ``system`` before it), or raw text with ``raw: true``."""
    if body.images:
        raise InvalidRequestError("images are not supported by openwen's models yet",
                                  param="images")
    common: dict[str, Any] = {
        "model": model_name(body.model), "sampling": sampling(body.options),
        "stop": stops(body.options), "max_tokens": max_tokens(body.options),
        "response_format": response_format(body.format), "thinking": thinking(body.think)}
    prompt = body.prompt or ""
    if body.raw:
        return ChatRequest(prompt=prompt, **common)
    turns = ((Message("system", body.system),) if body.system else ()) + (
        Message("user", prompt),)
    return ChatRequest(messages=turns, **common)
