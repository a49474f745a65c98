"""Turn a :class:`ChatRequest` into the JSON body of an OpenAI ``/chat/completions`` request.

Only fields that are set are sent, so a strict upstream (a cloud endpoint) sees a plain OpenAI
request unless the caller asked for an extension. Extensions, each accepted by the open serving
engines:

- ``chat_template_kwargs: {"enable_thinking": bool}`` for ``ChatRequest.thinking`` (vLLM, SGLang,
  llama-server);
- ``top_k``, ``min_p`` and ``repetition_penalty`` / ``repeat_penalty`` (vLLM and SGLang read the
  first spelling, llama.cpp servers the second);
- ``reasoning_content`` on assistant messages of the current turn (after the last user message), so
  interleaved thinking survives a tool-call round trip; templates drop older reasoning anyway;
- whatever the caller put in ``ChatRequest.extra`` (e.g. llama-server's ``cache_prompt``), last.
"""

from __future__ import annotations

from typing import Any

from openwen.messages import Message
from openwen.requests import ChatRequest, Sampling


def build_body(request: ChatRequest, model: str | None) -> dict[str, Any]:
    """The streaming request body for ``request``; ``model`` is the upstream's model id."""
    body: dict[str, Any] = {}
    if model:
        body["model"] = model
    body["messages"] = convert_messages(request.messages)
    body["stream"] = True
    body["stream_options"] = {"include_usage": True}
    if request.tools:
        body["tools"] = list(request.tools)
        body["parallel_tool_calls"] = request.parallel_tool_calls
    if request.tool_choice is not None:
        body["tool_choice"] = request.tool_choice
    body.update(_sampling_fields(request.sampling))
    if request.stop:
        body["stop"] = list(request.stop)
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.response_format is not None:
        body["response_format"] = request.response_format
    if request.logprobs:
        body["logprobs"] = True
        if request.top_logprobs:
            body["top_logprobs"] = request.top_logprobs
    if request.thinking is not None:
        body["chat_template_kwargs"] = {"enable_thinking": request.thinking}
    body.update(request.extra)
    return body


def _sampling_fields(sampling: Sampling) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "seed": sampling.seed,
        "presence_penalty": sampling.presence_penalty,
        "frequency_penalty": sampling.frequency_penalty,
        "top_k": sampling.top_k,
        "min_p": sampling.min_p,
        "repetition_penalty": sampling.repeat_penalty,
        "repeat_penalty": sampling.repeat_penalty,
    }
    return {key: value for key, value in fields.items() if value is not None}


def convert_messages(messages: tuple[Message, ...] | list[Message]) -> list[dict[str, Any]]:
    """OpenAI message dicts. ``developer`` becomes ``system``, which every upstream accepts."""
    current_turn = _last_user_index(messages) + 1
    return [
        _convert_message(message, keep_reasoning=index >= current_turn)
        for index, message in enumerate(messages)
    ]


def _last_user_index(messages: tuple[Message, ...] | list[Message]) -> int:
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].role == "user":
            return index
    return -1


def _convert_message(message: Message, *, keep_reasoning: bool) -> dict[str, Any]:
    role = "system" if message.role == "developer" else message.role
    out: dict[str, Any] = {"role": role}
    if message.role == "assistant" and message.tool_calls:
        out["content"] = message.content or None
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
    else:
        out["content"] = message.content or ""
    if message.role == "assistant" and message.reasoning and keep_reasoning:
        out["reasoning_content"] = message.reasoning
    if message.role == "tool" and message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    if message.name:
        out["name"] = message.name
    return out
