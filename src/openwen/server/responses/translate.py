"""The Responses API request in: input items -> messages -> the shared :class:`ChatRequest`.

The prompt of a response is its ``instructions`` (never carried over from earlier responses, as
OpenAI documents), then every earlier response's input and output items along the
``previous_response_id`` chain, then this request's ``input``. Consecutive assistant-side items
(``reasoning``, an assistant ``message``, ``function_call``\\ s) become one assistant message with
its tool calls; each ``function_call_output`` becomes a ``tool`` message.

Item types this server has no use for (hosted tools' calls, ``item_reference``) are skipped and
logged, like unknown fields; malformed items of the known types are a 400 naming the item.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from openwen.errors import InvalidRequestError
from openwen.messages import Message, ToolCall
from openwen.requests import ChatRequest, Sampling, ToolChoice
from openwen.server.openai.base import validation_error
from openwen.server.openai.protocol import THINKING_OFF_EFFORTS
from openwen.server.responses.protocol import (
    FunctionCallItem,
    FunctionCallOutputItem,
    FunctionTool,
    InputItem,
    MessageItem,
    NamedFunctionChoice,
    ReasoningItem,
    ResponseCreateRequest,
)

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
ITEM_MODELS: dict[str, type[BaseModel]] = {
    "message": MessageItem,
    "function_call": FunctionCallItem,
    "function_call_output": FunctionCallOutputItem,
    "reasoning": ReasoningItem,
}
ID_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco",
             "reasoning": "rs"}


def new_item_id(kind: str) -> str:
    return f"{ID_PREFIX.get(kind, 'item')}_{secrets.token_hex(16)}"


def validate_as(model: type[M], data: Any, where: str) -> M:
    """``data`` as ``model``; a problem is a 400 whose ``param`` starts with ``where``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = validation_error(model, exc.errors(include_url=False))
        param = f"{where}.{error.param}" if error.param else where
        detail = error.message.split(": ", 1)[-1] if error.param else error.message
        raise InvalidRequestError(f"{param}: {detail}", param=param, code=error.code) from None


def parse_items(raw: str | list[Any] | None, where: str = "input") -> list[InputItem]:
    """The known items of ``input`` (a string is one user message)."""
    if raw is None:
        return []
    if isinstance(raw, str):
        return [MessageItem(role="user", content=raw)]
    items: list[InputItem] = []
    for i, data in enumerate(raw):
        if not isinstance(data, dict):
            raise InvalidRequestError(f"{where}[{i}]: an item is a JSON object",
                                      param=f"{where}[{i}]", code="invalid_type")
        kind = data.get("type", "message" if "role" in data else None)
        model = ITEM_MODELS.get(kind) if isinstance(kind, str) else None
        if model is None:
            log.info("skipping an input item of type %r", kind)
            continue
        items.append(validate_as(model, data, f"{where}[{i}]"))  # type: ignore[arg-type]
    return items


def stored_item(item: InputItem) -> dict[str, Any]:
    """An input item as stored and listed by ``input_items`` (with an id, content as parts)."""
    data = item.model_dump(mode="json", by_alias=True, exclude_none=True)
    kind = "message" if isinstance(item, MessageItem) else data["type"]
    data["type"] = kind
    data.setdefault("id", new_item_id(kind))
    if isinstance(item, MessageItem):
        part = "output_text" if item.role == "assistant" else "input_text"
        if isinstance(item.content, str):
            data["content"] = [{"type": part, "text": item.content}]
        if item.role == "assistant":
            for p in data["content"]:
                p.setdefault("annotations", [])
        data.setdefault("status", "completed")
    return data


@dataclass
class _Assistant:
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    calls: list[ToolCall] = field(default_factory=list)

    def message(self) -> Message:
        return Message("assistant", "".join(self.text) or None,
                       reasoning="\n".join(self.reasoning) or None, tool_calls=tuple(self.calls))


def to_messages(items: Iterable[InputItem]) -> list[Message]:
    """Items as chat messages (see the module docstring)."""
    out: list[Message] = []
    pending: _Assistant | None = None
    names: dict[str, str] = {}

    def flush() -> None:
        nonlocal pending
        if pending is not None:
            out.append(pending.message())
            pending = None

    for item in items:
        if isinstance(item, MessageItem) and item.role != "assistant":
            flush()
            out.append(Message(item.role, item.text()))
            continue
        if isinstance(item, FunctionCallOutputItem):
            flush()
            out.append(Message("tool", item.text(), tool_call_id=item.call_id,
                               name=names.get(item.call_id)))
            continue
        if isinstance(item, ReasoningItem) and pending is not None and (
                pending.text or pending.calls):
            flush()  # a new round's thinking
        pending = pending or _Assistant()
        if isinstance(item, MessageItem):
            pending.text.append(item.text())
        elif isinstance(item, ReasoningItem):
            if text := item.text():
                pending.reasoning.append(text)
        elif isinstance(item, FunctionCallItem):
            names[item.call_id] = item.name
            pending.calls.append(ToolCall(item.call_id, item.name, item.arguments))
    flush()
    return out


def function_tools(raw: list[dict[str, Any]] | None) -> list[FunctionTool]:
    tools = []
    for i, data in enumerate(raw or ()):
        if not isinstance(data, dict):
            raise InvalidRequestError(f"tools[{i}]: a tool is a JSON object",
                                      param=f"tools[{i}]", code="invalid_type")
        if data.get("type") != "function":
            log.info("ignoring a tool of type %r (only function tools run here)",
                     data.get("type"))
            continue
        tools.append(validate_as(FunctionTool, data, f"tools[{i}]"))
    return tools


def tool_choice(body: ResponseCreateRequest, tools: list[FunctionTool]) -> ToolChoice | None:
    choice = body.tool_choice
    if isinstance(choice, NamedFunctionChoice):
        if choice.name not in {t.name for t in tools}:
            raise InvalidRequestError(f"tool_choice names the function '{choice.name}', which is "
                                      "not among the request's tools", param="tool_choice")
        return {"type": "function", "function": {"name": choice.name}}
    if choice == "required" and not tools:
        raise InvalidRequestError("tool_choice 'required' needs at least one function tool",
                                  param="tool_choice")
    return choice


def response_format(body: ResponseCreateRequest) -> dict[str, Any] | None:
    fmt = body.text.format if body.text is not None else None
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "json_object"}
    spec = {"name": fmt.name or "response", "schema": fmt.schema_, "strict": fmt.strict,
            "description": fmt.description}
    return {"type": "json_schema",
            "json_schema": {k: v for k, v in spec.items() if v is not None}}


def thinking(body: ResponseCreateRequest) -> bool | None:
    effort = body.reasoning.effort if body.reasoning is not None else None
    return None if effort is None else effort not in THINKING_OFF_EFFORTS


def to_chat_request(body: ResponseCreateRequest, history: list[InputItem],
                    items: list[InputItem]) -> ChatRequest:
    """The one place a Responses request becomes the shared request."""
    if not items:
        raise InvalidRequestError("input must hold at least one message or item",
                                  param="input", code="missing_required_parameter")
    tools = function_tools(body.tools)
    system = [Message("system", body.instructions)] if body.instructions else []
    return ChatRequest(
        messages=(*system, *to_messages([*history, *items])),
        model=body.model or None,
        tools=tuple(t.to_dict() for t in tools),
        tool_choice=tool_choice(body, tools),
        parallel_tool_calls=body.parallel_tool_calls is not False,
        sampling=Sampling(temperature=body.temperature, top_p=body.top_p),
        max_tokens=body.max_output_tokens,
        response_format=response_format(body),
        thinking=thinking(body),
        logprobs=body.logprobs,
        top_logprobs=body.top_logprobs or 0,
    )
