"""Anthropic requests into the shared :class:`~openwen.requests.ChatRequest` (the one place).

``system`` becomes the system message; ``tool_use`` blocks become the assistant's tool calls and
``tool_result`` blocks ``tool`` messages (in order, as a chat template expects them);
``thinking`` blocks go back as the assistant's reasoning. ``tool_choice`` ``any`` / ``tool`` are
grammar-enforced like OpenAI's ``required`` / named choice; ``thinking`` switches a thinking
model's reasoning on or off. Images and documents are refused with a clear 400."""

from __future__ import annotations

import json
from typing import Any

from openwen.errors import InvalidRequestError
from openwen.messages import Message, ToolCall
from openwen.requests import ChatRequest, Sampling, ToolChoice
from openwen.server.anthropic.protocol import (
    Block,
    CountTokensRequest,
    MessageParam,
    MessagesRequest,
    ThinkingParam,
    ToolChoiceParam,
    ToolParam,
)


def _text(content: str | list[Block] | None, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for i, block in enumerate(content):
        if block.type != "text":
            raise InvalidRequestError(f"{where}[{i}]: only text blocks are supported here, "
                                      f"not '{block.type}'", param=f"{where}[{i}].type")
        parts.append(block.text or "")
    return "\n".join(parts)


def system_text(system: str | list[Block] | None) -> str:
    return _text(system, "system")


def _message(i: int, m: MessageParam) -> list[Message]:
    where = f"messages[{i}].content"
    if isinstance(m.content, str):
        return [Message(m.role, m.content)]
    out: list[Message] = []
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[ToolCall] = []
    for j, block in enumerate(m.content):
        if block.type == "text":
            texts.append(block.text or "")
        elif block.type in ("thinking", "redacted_thinking"):
            reasoning.append(block.thinking or "")
        elif block.type == "tool_use" and m.role == "assistant":
            if not block.id or not block.name:
                raise InvalidRequestError(f"{where}[{j}]: tool_use needs id and name",
                                          param=f"{where}[{j}]")
            calls.append(ToolCall(block.id, block.name,
                                  json.dumps(block.input or {}, ensure_ascii=False)))
        elif block.type == "tool_result" and m.role == "user":
            if not block.tool_use_id:
                raise InvalidRequestError(f"{where}[{j}]: tool_result needs tool_use_id",
                                          param=f"{where}[{j}].tool_use_id")
            result = _text(block.content, f"{where}[{j}].content")
            if block.is_error:
                result = f"Error: {result}"
            out.append(Message("tool", result, tool_call_id=block.tool_use_id))
        else:
            raise InvalidRequestError(
                f"{where}[{j}]: '{block.type}' blocks are not supported by openwen"
                + (" in this role" if block.type in ("tool_use", "tool_result") else ""),
                param=f"{where}[{j}].type")
    if texts or calls or reasoning or not out:
        out.append(Message(m.role, "\n".join(texts), reasoning="\n".join(reasoning) or None,
                           tool_calls=tuple(calls)))
    return out


def messages(body: MessagesRequest | CountTokensRequest) -> tuple[Message, ...]:
    if not body.messages:
        raise InvalidRequestError("messages: at least one message is required",
                                  param="messages")
    out: list[Message] = []
    system = system_text(body.system)
    if system:
        out.append(Message("system", system))
    for i, m in enumerate(body.messages):
        out.extend(_message(i, m))
    return tuple(out)


def tools(items: list[ToolParam] | None) -> tuple[dict[str, Any], ...]:
    out = []
    for i, tool in enumerate(items or ()):
        if tool.type not in (None, "custom"):
            raise InvalidRequestError(f"tools[{i}]: Anthropic's server tool '{tool.type}' is "
                                      "not available; describe it as a custom tool",
                                      param=f"tools[{i}].type")
        out.append({"type": "function", "function": {
            "name": tool.name, "description": tool.description or "",
            "parameters": tool.input_schema}})
    return tuple(out)


def tool_choice(choice: ToolChoiceParam | None) -> tuple[ToolChoice | None, bool]:
    """The shared tool choice and whether parallel calls are allowed."""
    if choice is None:
        return None, True
    parallel = not choice.disable_parallel_tool_use
    if choice.type == "tool":
        if not choice.name:
            raise InvalidRequestError("tool_choice: type 'tool' needs a name",
                                      param="tool_choice.name")
        return {"type": "function", "function": {"name": choice.name}}, parallel
    named: dict[str, ToolChoice] = {"auto": "auto", "any": "required", "none": "none"}
    return named[choice.type], parallel


def thinking(param: ThinkingParam | None) -> bool | None:
    if param is None or param.type == "adaptive":
        return None
    return param.type == "enabled"


def chat_request(body: MessagesRequest) -> ChatRequest:
    choice, parallel = tool_choice(body.tool_choice)
    return ChatRequest(
        messages=messages(body), model=body.model, tools=tools(body.tools),
        tool_choice=choice, parallel_tool_calls=parallel,
        sampling=Sampling(temperature=body.temperature, top_p=body.top_p, top_k=body.top_k),
        stop=tuple(s for s in body.stop_sequences or () if s), max_tokens=body.max_tokens,
        thinking=thinking(body.thinking))


def count_request(body: CountTokensRequest) -> ChatRequest:
    choice, _ = tool_choice(body.tool_choice)
    return ChatRequest(messages=messages(body), model=body.model, tools=tools(body.tools),
                       tool_choice=choice, thinking=thinking(body.thinking))
