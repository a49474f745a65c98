"""Request models: leniency, validation errors naming the param, conversion to ChatRequest."""

from __future__ import annotations

import json
import logging

import pytest

from openwen.errors import InvalidRequestError
from openwen.server.openai.base import parse_request
from openwen.server.openai.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
)

USER = [{"role": "user", "content": "hi"}]


def chat(**fields: object) -> ChatCompletionRequest:
    fields.setdefault("messages", USER)
    return parse_request(ChatCompletionRequest, json.dumps(fields).encode())


def error_of(**fields: object) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as info:
        chat(**fields).to_chat_request()
    return info.value


def test_unknown_fields_are_ignored_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="openwen.server.openai"):
        request = chat(store=True, some_future_field={"x": 1},
                       messages=[{"role": "user", "content": "hi", "cache_control": {}}])
    assert request.to_chat_request().messages[0].content == "hi"
    logged = caplog.text
    assert "some_future_field" in logged and "store" in logged and "cache_control" in logged


@pytest.mark.parametrize(("fields", "param"), [
    ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ({"messages": [USER[0], {"role": "user"}]}, "messages[1]"),
    ({"messages": "hello"}, "messages"),
    ({"max_tokens": -1}, "max_tokens"),
    ({"max_completion_tokens": 0}, "max_completion_tokens"),
    ({"temperature": 3}, "temperature"),
    ({"top_p": 1.5}, "top_p"),
    ({"presence_penalty": -3}, "presence_penalty"),
    ({"n": 2}, "n"),
    ({"stop": 5}, "stop"),
    ({"stop": [str(i) for i in range(17)]}, "stop"),
    ({"seed": "abc"}, "seed"),
    ({"top_logprobs": 21, "logprobs": True}, "top_logprobs"),
    ({"top_logprobs": 2}, "top_logprobs"),
    ({"reasoning_effort": "extreme"}, "reasoning_effort"),
    ({"response_format": {"type": "json_schema"}}, "response_format"),
    ({"response_format": {"type": "xml"}}, "response_format.type"),
    ({"tools": [{"type": "function", "function": {"name": "has space"}}]},
     "tools[0].function.name"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tool_choice": {"type": "function", "function": {"name": "nope"}},
      "tools": [{"type": "function", "function": {"name": "f"}}]}, "tool_choice"),
    ({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]},
     "messages[0].content[1]"),
])
def test_invalid_requests_name_the_param(fields: dict[str, object], param: str) -> None:
    error = error_of(**fields)
    assert error.status == 400
    assert error.param == param
    assert error.message.startswith(param) or param in ("top_logprobs", "tool_choice")


def test_image_parts_get_a_clear_message() -> None:
    error = error_of(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}])
    assert "image_url" in error.message and "text" in error.message


def test_conversion_to_chat_request() -> None:
    request = chat(
        messages=[
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "a"},
                                         {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": None, "reasoning_content": "hmm",
             "tool_calls": [{"id": "c1", "type": "function",
                             "function": {"name": "f", "arguments": {"x": 1}}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
        ],
        model="qwen3:0.6b", max_tokens=50, max_completion_tokens=20, stop="END", seed=-1,
        temperature=0.5, top_k=20, repetition_penalty=1.1, logprobs=True, top_logprobs=3,
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        tool_choice={"type": "function", "function": {"name": "f"}}, parallel_tool_calls=False,
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
    ).to_chat_request()
    assert [m.role for m in request.messages] == ["developer", "user", "assistant", "tool"]
    assert request.messages[1].content == "a\nb"
    assert request.messages[2].reasoning == "hmm"
    assert request.messages[2].tool_calls[0].arguments == '{"x": 1}'
    assert request.messages[3].tool_call_id == "c1"
    assert request.model == "qwen3:0.6b"
    assert request.max_tokens == 20  # max_completion_tokens wins
    assert request.stop == ("END",)
    assert 0 <= (request.sampling.seed or 0) < 2**31
    assert request.sampling.temperature == 0.5 and request.sampling.top_k == 20
    assert request.sampling.repeat_penalty == 1.1
    assert request.logprobs and request.top_logprobs == 3
    assert request.tools[0]["function"]["name"] == "f"
    assert request.tool_choice == {"type": "function", "function": {"name": "f"}}
    assert request.parallel_tool_calls is False
    assert request.response_format == {"type": "json_schema",
                                       "json_schema": {"name": "x", "schema": {}}}


@pytest.mark.parametrize(("fields", "thinking"), [
    ({}, None),
    ({"reasoning_effort": "none"}, False),
    ({"reasoning_effort": "minimal"}, False),
    ({"reasoning_effort": "low"}, True),
    ({"reasoning_effort": "high"}, True),
    ({"chat_template_kwargs": {"enable_thinking": False}}, False),
    ({"chat_template_kwargs": {"enable_thinking": False}, "reasoning_effort": "high"}, False),
    ({"chat_template_kwargs": {"enable_thinking": True}, "reasoning_effort": "none"}, True),
])
def test_thinking_switch(fields: dict[str, object], thinking: bool | None) -> None:
    assert chat(**fields).to_chat_request().thinking is thinking


def test_completion_request() -> None:
    request = parse_request(CompletionRequest, b'{"prompt": ["Once upon"], "logprobs": 2}')
    converted = request.to_chat_request()
    assert converted.prompt == "Once upon" and converted.messages == ()
    assert converted.max_tokens == 16  # OpenAI's default for completions
    assert converted.logprobs and converted.top_logprobs == 2
    with pytest.raises(InvalidRequestError) as info:
        parse_request(CompletionRequest, b'{"prompt": [1, 2, 3]}')
    assert info.value.param == "prompt" and "token-id" in info.value.message


@pytest.mark.parametrize("body", [b'{"input": []}', b'{"input": ""}', b'{"input": [[1, 2]]}',
                                  b'{"input": ["a", ""]}', b'{"input": "a", "encoding_format": 1}'])
def test_bad_embedding_requests(body: bytes) -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_request(EmbeddingRequest, body)
    assert info.value.param in ("input", "encoding_format")


@pytest.mark.parametrize(("body", "code"), [
    (b"", None), (b"{", "invalid_json"), (b"[1]", "invalid_json"),
    (b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}', "invalid_json"),
])
def test_unparseable_bodies(body: bytes, code: str | None) -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_request(ChatCompletionRequest, body)
    assert info.value.status == 400 and info.value.code == code
