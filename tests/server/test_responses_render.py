"""The Responses rendering on scripted events, validated against the openai SDK's own types."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from openwen.errors import EngineError
from openwen.messages import (
    Done,
    ReasoningDelta,
    TextDelta,
    TokenLogprob,
    ToolCall,
    ToolCallEvent,
    Usage,
)
from openwen.server.responses.protocol import ResponseCreateRequest
from openwen.server.responses.render import ResponseBuilder, request_echo
from openwen.server.responses.translate import parse_items, to_messages

EVENTS = TypeAdapter(ResponseStreamEvent)
SCRIPT = [
    ReasoningDelta("Think"), ReasoningDelta("ing."),
    TextDelta("Hel", logprobs=(TokenLogprob("Hel", -0.1, top=(("Hel", -0.1),)),)),
    TextDelta("lo"),
    ToolCallEvent(0, ToolCall("call_1", "get_weather", '{"city": "Paris"}')),
]


def builder(**fields: Any) -> ResponseBuilder:
    body = ResponseCreateRequest.model_validate({
        "model": "m", "input": "hi", "instructions": "Be brief.", "metadata": {"k": "v"},
        "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}},
                  {"type": "web_search"}],
        "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}},
        **fields})
    return ResponseBuilder("resp_1", "m", request_echo(body), with_logprobs=True)


def run(b: ResponseBuilder, events: list[Any], end: Any) -> list[dict[str, Any]]:
    out = b.start()
    for event in events:
        out += b.add(event)
    out += b.finish(end) if isinstance(end, Done) else b.fail(end)
    return out


def test_event_sequence_validates_and_is_numbered() -> None:
    b = builder()
    payloads = run(b, SCRIPT, Done("tool_calls", usage=Usage(10, 5, 4)))
    parsed = [EVENTS.validate_python(p) for p in payloads]
    assert [p.sequence_number for p in parsed] == list(range(len(parsed)))
    kinds = [p.type for p in parsed]
    assert kinds == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added",
        "response.reasoning_text.delta", "response.reasoning_text.delta",
        "response.reasoning_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.completed",
    ]
    final = Response.model_validate(payloads[-1]["response"])
    assert final.status == "completed" and final.output_text == "Hello"
    assert [item.type for item in final.output] == ["reasoning", "message", "function_call"]
    call = final.output[2]
    assert call.type == "function_call" and call.call_id == "call_1"
    assert call.arguments == '{"city": "Paris"}'
    reasoning = final.output[0]
    assert reasoning.type == "reasoning" and reasoning.content is not None
    assert reasoning.content[0].text == "Thinking."
    assert final.usage is not None and final.usage.total_tokens == 15
    assert final.usage.input_tokens_details.cached_tokens == 4
    assert final.instructions == "Be brief." and final.metadata == {"k": "v"}
    assert [t.type for t in final.tools] == ["function"]  # hosted tools are not echoed
    message = final.output[1]
    assert message.type == "message"
    part = message.content[0]
    assert part.type == "output_text" and part.logprobs and part.logprobs[0].token == "Hel"


def test_length_is_incomplete_with_the_reason() -> None:
    payloads = run(builder(), [TextDelta("Hi")], Done("length"))
    assert payloads[-1]["type"] == "response.incomplete"
    final = Response.model_validate(payloads[-1]["response"])
    assert final.status == "incomplete"
    assert final.incomplete_details is not None
    assert final.incomplete_details.reason == "max_output_tokens"


def test_failure_closes_the_item_and_ends_failed() -> None:
    b = builder()
    payloads = run(b, [TextDelta("Hal")], EngineError("the engine broke"))
    parsed = [EVENTS.validate_python(p) for p in payloads]
    assert [p.type for p in parsed[-3:]] == ["response.output_item.done", "error",
                                             "response.failed"]
    final = Response.model_validate(payloads[-1]["response"])
    assert final.status == "failed" and final.error is not None
    assert final.error.message == "the engine broke"
    assert final.output[0].status == "incomplete"  # type: ignore[union-attr]
    assert b.snapshot()["status"] == "failed"


def test_output_items_read_back_as_history() -> None:
    b = builder()
    run(b, SCRIPT, Done("tool_calls"))
    items = parse_items([*b.snapshot()["output"],
                         {"type": "function_call_output", "call_id": "call_1", "output": "Sunny"}])
    messages = to_messages(items)
    assert [m.role for m in messages] == ["assistant", "tool"]
    assert messages[0].content == "Hello" and messages[0].reasoning == "Thinking."
    assert messages[0].tool_calls == (ToolCall("call_1", "get_weather", '{"city": "Paris"}'),)
    assert messages[1].name == "get_weather" and messages[1].content == "Sunny"


@pytest.mark.parametrize("item", [
    {"type": "message", "role": "user", "content": [{"type": "input_image", "image_url": "x"}]},
    {"type": "function_call", "name": "f"},
    {"role": "robot", "content": "hi"},
])
def test_bad_items_name_the_item(item: dict[str, Any]) -> None:
    from openwen.errors import InvalidRequestError

    with pytest.raises(InvalidRequestError) as info:
        parse_items([{"role": "user", "content": "ok"}, item])
    assert info.value.param is not None and info.value.param.startswith("input[1]")
