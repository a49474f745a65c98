"""Reasoning, tool calls and mid-stream failures end to end (HTTP server + openai client).

A 135M model cannot be steered into thinking or calling tools reliably, so a scripted engine
plays the model here; everything else (service, routes, SSE, the client) is real. The encoder is
also tested on its own (test_sse.py) and the real model's plain answers elsewhere.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import openai
import pytest
from openai.types.chat import ChatCompletion
from serverkit import RunningServer, running_server, server_settings

from openwen.chat.service import ChatService
from openwen.config import Settings
from openwen.engines.base import Capabilities, Engine, ModelInfo
from openwen.engines.registry import EngineRegistry
from openwen.errors import EngineError, ModelNotFoundError
from openwen.messages import (
    Done,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    Usage,
)
from openwen.requests import ChatRequest

SCRIPTS: dict[str, list[StreamEvent]] = {
    "think": [ReasoningDelta("Two and two"), ReasoningDelta(" make four."),
              TextDelta("The answer"), TextDelta(" is 4."),
              Done("stop", usage=Usage(prompt_tokens=9, completion_tokens=8))],
    "tools": [ReasoningDelta("I need the weather and the time."),
              ToolCallEvent(0, ToolCall("call_w", "get_weather", '{"city": "Paris"}')),
              ToolCallEvent(1, ToolCall("call_t", "get_time", '{"zone": "CET"}')),
              Done("tool_calls", usage=Usage(prompt_tokens=20, completion_tokens=30))],
}
TOOLS = [{"type": "function", "function": {"name": name, "parameters": {
    "type": "object", "properties": {arg: {"type": "string"}}, "required": [arg]}}}
    for name, arg in (("get_weather", "city"), ("get_time", "zone"))]


class ScriptedEngine:
    name = "scripted"
    capabilities = Capabilities(tools=True, thinking=True)

    def __init__(self) -> None:
        self.requests: list[ChatRequest] = []

    def models(self) -> list[ModelInfo]:
        return [ModelInfo(id=self.name)]

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        self.requests.append(request)
        script = (request.messages[-1].content or "").strip()
        if script == "fail":
            yield TextDelta("partial answer")
            await asyncio.sleep(0)
            raise EngineError("the upstream went away")
        for event in SCRIPTS[script]:
            await asyncio.sleep(0)
            yield event

    def count_tokens(self, request: ChatRequest) -> int:
        return 1

    async def aclose(self) -> None:
        return None


class ScriptedRegistry(EngineRegistry):
    def __init__(self, settings: Settings, engine: ScriptedEngine):
        super().__init__(settings)
        self.engine = engine

    async def list_models(self) -> list[ModelInfo]:
        return self.engine.models()

    def loaded(self) -> list[Engine]:
        return [self.engine]  # type: ignore[list-item]

    async def get(self, model: str | None) -> Engine:
        if model not in (None, "scripted"):
            raise ModelNotFoundError(str(model), ["scripted"])
        return self.engine  # type: ignore[return-value]


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = server_settings(Path(tmp_path_factory.mktemp("scripted")), model="scripted")
    service = ChatService(settings, registry=ScriptedRegistry(settings, ScriptedEngine()))
    with running_server(settings, service=service) as server:
        yield server


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_reasoning_in_a_message(scripted: RunningServer) -> None:
    raw = scripted.client().chat.completions.with_raw_response.create(
        model="scripted", messages=ask("think"), reasoning_effort="high")  # type: ignore[arg-type]
    completion = ChatCompletion.model_validate(json.loads(raw.http_response.content))
    message = completion.choices[0].message
    assert message.content == "The answer is 4."
    extra = message.model_extra or {}
    assert extra["reasoning_content"] == extra["reasoning"] == "Two and two make four."
    engine = scripted.service.registry.loaded()[0]
    assert engine.requests[-1].thinking is True  # type: ignore[attr-defined]


def test_reasoning_deltas_in_a_stream(scripted: RunningServer) -> None:
    stream = scripted.client().chat.completions.create(
        model="scripted", messages=ask("think"), stream=True)  # type: ignore[arg-type]
    reasoning, content = "", ""
    for chunk in stream:
        delta = chunk.choices[0].delta if chunk.choices else None
        if delta is None:
            continue
        extra = delta.model_extra or {}
        assert extra.get("reasoning_content") == extra.get("reasoning")
        reasoning += extra.get("reasoning") or ""
        content += delta.content or ""
    assert reasoning == "Two and two make four."
    assert content == "The answer is 4."


def test_tool_calls_in_a_message(scripted: RunningServer) -> None:
    completion = scripted.client().chat.completions.create(
        model="scripted", messages=ask("tools"), tools=TOOLS,  # type: ignore[arg-type]
        tool_choice="required")
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == [  # type: ignore[union-attr]
        ("call_w", "get_weather", {"city": "Paris"}), ("call_t", "get_time", {"zone": "CET"})]


def test_tool_call_deltas_accumulate_in_the_sdk_stream_helper(scripted: RunningServer) -> None:
    with scripted.client().chat.completions.stream(
            model="scripted", messages=ask("tools"), tools=TOOLS,  # type: ignore[arg-type]
            stream_options={"include_usage": True}) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_completion()
    assert "tool_calls.function.arguments.done" in events
    calls = final.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]  # type: ignore[union-attr]
    assert json.loads(calls[1].function.arguments) == {"zone": "CET"}  # type: ignore[union-attr]
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.usage is not None and final.usage.total_tokens == 50


async def test_failure_mid_stream_reaches_the_client_as_an_error(scripted: RunningServer
                                                                  ) -> None:
    client = scripted.async_client()
    stream = await client.chat.completions.create(
        model="scripted", messages=ask("fail"), stream=True)  # type: ignore[arg-type]
    seen = ""
    with pytest.raises(openai.APIError, match="upstream went away"):
        async for chunk in stream:
            seen += chunk.choices[0].delta.content or "" if chunk.choices else ""
    assert seen == "partial answer"
    await client.close()


def test_failure_without_streaming_is_an_error_status(scripted: RunningServer) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        scripted.client().chat.completions.create(model="scripted",
                                                  messages=ask("fail"))  # type: ignore[arg-type]
    assert info.value.status_code == 502
    assert isinstance(info.value.body, dict) and info.value.body["code"] == "engine_error"
