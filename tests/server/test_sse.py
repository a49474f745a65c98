"""The SSE encoder on scripted events, validated against the openai client's own types."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from openai.types import Completion
from openai.types.chat import ChatCompletionChunk

from openwen.errors import ContextLengthError
from openwen.messages import (
    Done,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    TokenLogprob,
    ToolCall,
    ToolCallEvent,
    Usage,
)
from openwen.server import sse
from openwen.server.errors import ShuttingDownError
from openwen.server.openai.render import ChatChunks, CompletionChunks
from openwen.server.sse import DONE, event_stream

SCRIPT: list[StreamEvent] = [
    ReasoningDelta("Let me think."),
    TextDelta("Hello",
              logprobs=(TokenLogprob("Hello", -0.5, top=(("Hello", -0.5), ("Hi", -1.5))),)),
    ToolCallEvent(0, ToolCall("call_a", "get_weather", '{"city": "Paris"}')),
    ToolCallEvent(1, ToolCall("call_b", "get_time", "{}")),
    Done("tool_calls", usage=Usage(prompt_tokens=11, completion_tokens=7, cached_tokens=3)),
]


async def _iterate(events: list[StreamEvent]) -> AsyncIterator[StreamEvent]:
    for event in events:
        yield event


async def encode(events: list[StreamEvent], chunks: ChatChunks | CompletionChunks,
                 **kw: object) -> list[bytes]:
    stream = _iterate(events[1:])
    return [frame async for frame in event_stream(events[0], stream, chunks, **kw)]


def payloads(frames: list[bytes]) -> list[dict[str, Any]]:
    out = []
    for frame in frames:
        assert frame.startswith(b"data: ") and frame.endswith(b"\n\n")
        if frame != DONE:
            out.append(json.loads(frame[len(b"data: "):]))
    return out


async def test_chat_stream_wire_format() -> None:
    frames = await encode(SCRIPT, ChatChunks(model="m", include_usage=True))
    assert frames[-1] == DONE
    chunks = payloads(frames)
    parsed = [ChatCompletionChunk.model_validate(c) for c in chunks]
    assert len({c.id for c in parsed}) == 1 and len({c.created for c in parsed}) == 1
    # role on the first delta only
    assert parsed[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in parsed[1:] if c.choices)
    # every chunk but the last carries usage: null, the last has the totals and no choices
    assert all("usage" in c and c["usage"] is None for c in chunks[:-1])
    assert parsed[-1].choices == [] and parsed[-1].usage is not None
    assert parsed[-1].usage.total_tokens == 18
    assert parsed[-1].usage.prompt_tokens_details.cached_tokens == 3  # type: ignore[union-attr]
    # finish_reason in a final chunk with an empty delta
    final = chunks[-2]["choices"][0]
    assert final["delta"] == {} and final["finish_reason"] == "tool_calls"


async def test_reasoning_is_sent_under_both_names() -> None:
    chunks = payloads(await encode(SCRIPT, ChatChunks(model="m", include_usage=False)))
    delta = chunks[1]["choices"][0]["delta"]
    assert delta == {"reasoning_content": "Let me think.", "reasoning": "Let me think."}
    assert all("usage" not in c for c in chunks)


async def test_tool_call_deltas_name_first_then_arguments() -> None:
    chunks = payloads(await encode(SCRIPT, ChatChunks(model="m", include_usage=False)))
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks
             if c["choices"] and "tool_calls" in c["choices"][0]["delta"]]
    assert calls[0] == {"index": 0, "id": "call_a", "type": "function",
                        "function": {"name": "get_weather", "arguments": ""}}
    assert calls[1] == {"index": 0, "function": {"arguments": '{"city": "Paris"}'}}
    assert calls[2]["index"] == 1 and calls[2]["id"] == "call_b"
    assert calls[3] == {"index": 1, "function": {"arguments": "{}"}}


async def test_logprobs_on_text_chunks() -> None:
    parsed = [ChatCompletionChunk.model_validate(c) for c in
              payloads(await encode(SCRIPT, ChatChunks(model="m", include_usage=False)))]
    text = next(c for c in parsed if c.choices and c.choices[0].delta.content == "Hello")
    entry = text.choices[0].logprobs.content[0]  # type: ignore[union-attr,index]
    assert entry.token == "Hello" and entry.logprob == -0.5 and entry.bytes == list(b"Hello")
    assert [t.token for t in entry.top_logprobs] == ["Hello", "Hi"]


async def test_error_mid_stream_is_an_error_event_then_end() -> None:
    async def failing() -> AsyncIterator[StreamEvent]:
        yield TextDelta(" world")
        raise ContextLengthError(3000, 2048)

    frames = [f async for f in event_stream(TextDelta("Hello"), failing(),
                                            ChatChunks(model="m", include_usage=False))]
    assert DONE not in frames
    last = payloads(frames)[-1]
    assert last["error"]["code"] == "context_length_exceeded"
    assert set(last["error"]) == {"message", "type", "param", "code"}


async def test_closing_the_stream_closes_the_engine_stream() -> None:
    closed = []

    async def endless() -> AsyncIterator[StreamEvent]:
        try:
            while True:
                yield TextDelta("x")
        finally:
            closed.append(True)

    stream = endless()
    frames = event_stream(await anext(stream), stream, ChatChunks(model="m", include_usage=False))
    for _ in range(3):
        await anext(frames)
    await frames.aclose()
    assert closed == [True]


async def test_shutdown_ends_a_stream_with_an_error_event() -> None:
    frames = await encode([TextDelta("a"), TextDelta("b"), Done("stop")],
                          ChatChunks(model="m", include_usage=False),
                          stopping=lambda: ShuttingDownError())
    last = payloads(frames)[-1]
    assert last["error"]["code"] == "shutting_down"
    assert DONE not in frames


def with_finish(chunk: dict[str, Any]) -> dict[str, Any]:
    choices = [{**c, "finish_reason": c["finish_reason"] or "stop"} for c in chunk["choices"]]
    return {**chunk, "choices": choices}


async def test_completion_chunks_validate_as_completions() -> None:
    events: list[StreamEvent] = [
        TextDelta(" Paris", logprobs=(TokenLogprob(" Paris", -0.1, top=((" Paris", -0.1),)),)),
        TextDelta(".", logprobs=(TokenLogprob(".", -0.2),)),
        Done("length", usage=Usage(prompt_tokens=4, completion_tokens=2)),
    ]
    chunks = CompletionChunks(model="m", include_usage=True, echo="Capital:", logprobs=True)
    raw = payloads(await encode(events, chunks))
    # streamed text chunks carry finish_reason null, which the SDK's type (made for whole
    # completions) does not allow; the SDK builds stream chunks without validating them
    assert all(c["choices"][0]["finish_reason"] is None for c in raw[:-2])
    parsed = [Completion.model_validate(with_finish(c)) for c in raw]
    assert parsed[0].choices[0].text == "Capital:"
    assert "".join(c.choices[0].text for c in parsed if c.choices) == "Capital: Paris."
    assert parsed[1].choices[0].logprobs.text_offset == [8]  # type: ignore[union-attr]
    assert parsed[2].choices[0].logprobs.text_offset == [14]  # type: ignore[union-attr]
    assert parsed[-2].choices[0].finish_reason == "length"
    assert parsed[-1].choices == [] and parsed[-1].usage.total_tokens == 6  # type: ignore[union-attr]


@pytest.mark.parametrize("include_usage", [False, True])
@pytest.mark.parametrize("text", ["plain", 'a "quoted" \\ back', "line\nbreak", "中文 ✓ \U0001f600",
                                  "", "\ue000openwen"])
def test_text_frames_from_the_template_match_the_full_encoding(include_usage: bool,
                                                               text: str) -> None:
    chunks = ChatChunks(model='m"odel', include_usage=include_usage)
    assert chunks.text_frame(text) == sse.frame(chunks._chunk({"content": text}))
    assert chunks.text_frame(text) == sse.frame(chunks.for_event(TextDelta(text))[0])
