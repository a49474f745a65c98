"""Chat and text completions through the official openai client against the real server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types import Completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel, ConfigDict, Field
from serverkit import RunningServer, json_events, running_server, server_settings, sse_events

pytestmark = pytest.mark.slow

HELLO = [{"role": "user", "content": "Say hello."}]


def test_chat_completion(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="smollm2", messages=HELLO, max_tokens=5, seed=1)  # type: ignore[arg-type]
    assert raw.http_response.status_code == 200
    completion = ChatCompletion.model_validate(json.loads(raw.http_response.content))
    assert completion.object == "chat.completion" and completion.id.startswith("chatcmpl-")
    assert completion.model == "smollm2"
    choice = completion.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens > 5
    assert 1 <= usage.completion_tokens <= 5
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert raw.parse().choices[0].message.content == choice.message.content


def test_default_model_when_none_given(http: httpx.Client) -> None:
    response = http.post("/v1/chat/completions", json={"messages": HELLO, "max_tokens": 2})
    assert response.status_code == 200
    assert ChatCompletion.model_validate(response.json()).model == "smollm2"


def test_stream_wire_format_with_include_usage(api: RunningServer, http: httpx.Client) -> None:
    body = {"model": "smollm2", "messages": HELLO, "max_tokens": 6, "stream": True,
            "stream_options": {"include_usage": True}}
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        payloads = list(sse_events(response.iter_lines()))
    assert payloads[-1] == "[DONE]"
    raw = json_events(payloads)
    chunks = [ChatCompletionChunk.model_validate(c) for c in raw]
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in chunks[1:] if c.choices)
    assert all(c["usage"] is None for c in raw[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    final = chunks[-2].choices[0]
    assert final.finish_reason in ("stop", "length") and final.delta.content is None
    assert all(c.choices[0].finish_reason is None for c in chunks[:-2])
    text_chunks = [c for c in chunks[1:-2]]
    assert chunks[-1].usage.completion_tokens >= 1
    assert len(text_chunks) <= chunks[-1].usage.completion_tokens


def test_stream_without_include_usage_has_no_usage(http: httpx.Client) -> None:
    body = {"messages": HELLO, "max_tokens": 3, "stream": True}
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        raw = json_events(list(sse_events(response.iter_lines())))
    assert all("usage" not in c for c in raw)
    assert raw[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_stream_sync_client(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="smollm2", messages=HELLO, max_tokens=5, stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True}, seed=3)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens <= 5


async def test_stream_async_client(api: RunningServer) -> None:
    client = api.async_client()
    stream = await client.chat.completions.create(
        model="smollm2", messages=HELLO, max_tokens=5, stream=True,  # type: ignore[arg-type]
        temperature=0)
    text = ""
    finish = None
    async for chunk in stream:
        assert isinstance(chunk, ChatCompletionChunk)
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
    assert text and finish in ("stop", "length")
    completion = await client.chat.completions.create(
        model="smollm2", messages=HELLO, max_tokens=5, temperature=0)  # type: ignore[arg-type]
    assert completion.choices[0].message.content == text  # greedy: the same answer
    await client.close()


def test_seed_makes_answers_repeatable(client: openai.OpenAI) -> None:
    def ask(question: str, seed: int) -> str:
        completion = client.chat.completions.create(
            messages=[{"role": "user", "content": question}],  # type: ignore[list-item]
            model="smollm2", max_tokens=6, temperature=1.0, seed=seed)
        return completion.choices[0].message.content or ""

    # the same request after the same other request: same prompt cache state, same numbers
    ask("Name an animal.", 1)
    first = ask("Name a colour.", 11)
    ask("Name an animal.", 1)
    assert ask("Name a colour.", 11) == first


def test_max_completion_tokens_and_stop(client: openai.OpenAI) -> None:
    counting = [{"role": "user", "content": "Count from 1 to 10 separated by commas."}]
    free = client.chat.completions.create(model="smollm2", messages=counting,  # type: ignore[arg-type]
                                          max_completion_tokens=12, temperature=0)
    assert free.usage is not None and free.usage.completion_tokens <= 12
    text = free.choices[0].message.content or ""
    assert "3" in text
    stopped = client.chat.completions.create(model="smollm2", messages=counting,  # type: ignore[arg-type]
                                             max_tokens=12, temperature=0, stop=["3"])
    # the answer up to the stop string (the chat parser drops trailing newlines of an answer)
    assert stopped.choices[0].message.content == text[: text.index("3")].rstrip("\n")
    assert stopped.choices[0].finish_reason == "stop"


def test_logprobs(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="smollm2", messages=HELLO, max_tokens=4, logprobs=True,  # type: ignore[arg-type]
        top_logprobs=3, temperature=0)
    choice = completion.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content
    entries = choice.logprobs.content
    assert "".join(e.token for e in entries) == choice.message.content
    for entry in entries:
        assert entry.logprob <= 0
        assert len(entry.top_logprobs) == 3
        assert entry.top_logprobs[0].logprob >= entry.top_logprobs[-1].logprob
    # greedy: the chosen token is the most likely one
    assert entries[0].token == entries[0].top_logprobs[0].token


class Capital(BaseModel):
    model_config = ConfigDict(extra="forbid")
    city: str = Field(max_length=12)
    country: str = Field(max_length=12)


def test_json_schema_output_parses(client: openai.OpenAI) -> None:
    completion = client.chat.completions.parse(
        model="smollm2", max_tokens=60, temperature=0,
        messages=[{"role": "user", "content": "What is the capital of France? Answer in JSON."}],
        response_format=Capital)
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Capital)
    assert parsed.city and parsed.country


def test_json_object_mode(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="smollm2", max_tokens=24, temperature=0,
        messages=[{"role": "user", "content": "Describe a cat as JSON."}],  # type: ignore[list-item]
        response_format={"type": "json_object"})
    content = completion.choices[0].message.content or ""
    if completion.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(content), dict)
    else:  # cut at max_tokens: still a JSON object as far as it goes
        assert content.lstrip().startswith("{")


def test_tools_are_accepted(client: openai.OpenAI) -> None:
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}}]
    completion = client.chat.completions.create(
        model="smollm2", max_tokens=8, temperature=0, tools=tools,  # type: ignore[arg-type]
        tool_choice="auto", parallel_tool_calls=True,
        messages=[{"role": "user", "content": "What's the weather in Paris?"}])
    choice = completion.choices[0]
    assert choice.finish_reason in ("stop", "length", "tool_calls")
    if choice.finish_reason == "tool_calls":
        assert choice.message.tool_calls


def test_multi_turn_with_tool_results(client: openai.OpenAI) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
    ]
    completion = client.chat.completions.create(model="smollm2", max_tokens=5,  # type: ignore[arg-type]
                                                messages=messages)
    assert completion.choices[0].message.content


def test_text_completion(client: openai.OpenAI) -> None:
    raw = client.completions.with_raw_response.create(
        model="smollm2", prompt="The capital of France is", max_tokens=4, temperature=0,
        logprobs=2, echo=True)
    completion = Completion.model_validate(json.loads(raw.http_response.content))
    choice = completion.choices[0]
    assert completion.object == "text_completion"
    assert choice.text.startswith("The capital of France is")
    assert len(choice.text) > len("The capital of France is")
    assert choice.logprobs is not None and choice.logprobs.tokens
    assert choice.logprobs.text_offset[0] == len("The capital of France is")
    assert all(len(top) == 2 for top in choice.logprobs.top_logprobs or [])
    assert completion.usage is not None and completion.usage.completion_tokens <= 4


def test_text_completion_stream(client: openai.OpenAI) -> None:
    stream = client.completions.create(model="smollm2", prompt="Once upon a time",
                                       max_tokens=4, stream=True, temperature=0,
                                       stream_options={"include_usage": True})
    chunks = list(stream)
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    plain = client.completions.create(model="smollm2", prompt="Once upon a time",
                                      max_tokens=4, temperature=0)
    assert text == plain.choices[0].text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens <= 4


def test_huge_max_tokens_is_clamped_to_the_context(tmp_path: Path) -> None:
    """max_tokens far beyond the context is not an error: the answer stops when the context is
    full, with finish_reason "length". (A small context keeps the long prompt cheap.)"""
    with running_server(server_settings(tmp_path / "home", n_ctx=256)) as server, \
            httpx.Client(base_url=server.url, timeout=300) as http:

        def ask(words: int, max_tokens: int) -> dict[str, Any]:
            response = http.post("/v1/chat/completions", json={
                "messages": [{"role": "user", "content": "word " * words}],
                "max_tokens": max_tokens, "temperature": 0})
            assert response.status_code == 200, response.text
            return response.json()  # type: ignore[no-any-return]

        probe = ask(200, 1)["usage"]["prompt_tokens"]
        answer = ask(200 - (probe - 248), 10**12)  # leave room for about 8 tokens
    usage = answer["usage"]
    room = 256 - usage["prompt_tokens"]
    assert 0 < room <= 20
    assert usage["completion_tokens"] <= room
    finish = answer["choices"][0]["finish_reason"]
    assert finish == "length" or usage["completion_tokens"] < room


WEATHER_TOOL = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
                   "required": ["city"]}}}]


def test_forced_tool_call_streams_as_tool_call_deltas(client: openai.OpenAI) -> None:
    """tool_choice naming a function makes even a 135M model call it (grammar-constrained)."""
    stream = client.chat.completions.create(
        model="smollm2", max_tokens=40, temperature=0, stream=True,  # type: ignore[arg-type]
        tools=WEATHER_TOOL, tool_choice={"type": "function", "function": {"name": "get_weather"}},
        messages=[{"role": "user", "content": "What's the weather in Paris?"}])
    calls: dict[int, dict[str, str]] = {}
    for chunk in stream:
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            call = calls.setdefault(delta.index, {"name": "", "arguments": ""})
            if delta.id:  # the first delta of a call carries id, type and name
                assert delta.type == "function" and delta.function and delta.function.name
                assert not call["name"]
            call["name"] += (delta.function.name or "") if delta.function else ""
            call["arguments"] += (delta.function.arguments or "") if delta.function else ""
    assert calls, "no tool call was streamed"
    assert calls[0]["name"] == "get_weather"
    assert isinstance(json.loads(calls[0]["arguments"])["city"], str)
