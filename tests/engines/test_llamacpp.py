"""The embedded engine on the real bundled model (SmolLM2-135M-Instruct)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openwen.engines.llamacpp import LlamaCppEngine
from openwen.errors import ContextLengthError, InvalidRequestError, ModelFileError
from openwen.messages import Done, Message, StreamEvent, TextDelta
from openwen.requests import ChatRequest, Sampling

GREEDY = Sampling(temperature=0.0, seed=7)


def ask(text: str, **kw: object) -> ChatRequest:
    kw.setdefault("sampling", GREEDY)
    return ChatRequest(messages=(Message("user", text),), **kw)  # type: ignore[arg-type]


async def collect(engine: LlamaCppEngine, request: ChatRequest) -> list[StreamEvent]:
    return [event async for event in engine.stream(request)]


def text_of(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_streams_text_then_done_with_usage(smollm2: LlamaCppEngine) -> None:
    events = await collect(smollm2, ask("What is the capital of France?", max_tokens=12))
    done = events[-1]
    assert isinstance(done, Done)
    assert sum(isinstance(e, Done) for e in events) == 1
    assert text_of(events).strip()
    assert done.usage.prompt_tokens > 5
    assert 1 <= done.usage.completion_tokens <= 12
    assert done.finish_reason in ("stop", "length")
    assert done.timings.ttft_ms > 0 and done.timings.decode_ms >= 0


async def test_max_tokens_gives_length(smollm2: LlamaCppEngine) -> None:
    events = await collect(smollm2, ask("Write a long story about a dragon.", max_tokens=5))
    done = events[-1]
    assert isinstance(done, Done)
    assert done.finish_reason == "length"
    assert done.usage.completion_tokens == 5


async def test_same_seed_same_tokens(smollm2: LlamaCppEngine) -> None:
    sampling = Sampling(temperature=0.9, seed=1234)
    first = text_of(
        await collect(smollm2, ask("Tell me a fun fact.", max_tokens=20, sampling=sampling))
    )
    await collect(smollm2, ask("Something else in between.", max_tokens=5))
    second = text_of(
        await collect(smollm2, ask("Tell me a fun fact.", max_tokens=20, sampling=sampling))
    )
    assert first == second


async def test_stop_string_is_not_emitted(smollm2: LlamaCppEngine) -> None:
    free = text_of(
        await collect(smollm2, ask("Count from 1 to 10 separated by commas.", max_tokens=40))
    )
    assert "3" in free
    stopped = await collect(
        smollm2, ask("Count from 1 to 10 separated by commas.", max_tokens=40, stop=("3",))
    )
    assert "3" not in text_of(stopped)
    assert isinstance(stopped[-1], Done) and stopped[-1].finish_reason == "stop"
    # the answer parser trims newlines at the very end of an answer
    assert text_of(stopped) == free[: free.index("3")].rstrip("\n")


async def test_cancel_stops_within_a_token(smollm2: LlamaCppEngine) -> None:
    request = ask("Write a very long essay about the sea.", max_tokens=500)
    prompt_tokens = smollm2.count_tokens(request)
    stream = smollm2.stream(request)
    seen = 0
    async for event in stream:
        seen += isinstance(event, TextDelta)
        if seen == 3:
            break
    at_cancel = smollm2.progress_tokens
    await stream.aclose()  # type: ignore[attr-defined]
    # The next request queues behind the cancelled one; once it runs, the cancelled job is over.
    await collect(smollm2, ask("hi", max_tokens=1))
    assert prompt_tokens > 0
    assert at_cancel >= 3
    # at most the token being decoded when the cancel arrived
    assert smollm2.last_cancelled_tokens - at_cancel <= 1


async def test_prompt_longer_than_context_states_both_lengths(bundled_model: Path) -> None:
    engine = LlamaCppEngine(bundled_model, name="tiny", n_ctx=256, n_threads=2)
    try:
        with pytest.raises(ContextLengthError) as info:
            await collect(engine, ask("word " * 400))
        assert "256" in info.value.message
        assert str(info.value.prompt_tokens) in info.value.message
        assert info.value.prompt_tokens > 256
    finally:
        await engine.aclose()


async def test_json_schema_output_always_parses(smollm2: LlamaCppEngine) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "c", "schema": schema}}
    events = await collect(
        smollm2, ask("Give me a city as JSON.", max_tokens=60, response_format=fmt)
    )
    data = json.loads(text_of(events))
    assert isinstance(data["city"], str) and isinstance(data["population"], int)


async def test_bad_schema_is_invalid_request(smollm2: LlamaCppEngine) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "c", "schema": "not a schema"}}
    with pytest.raises(InvalidRequestError):
        await collect(smollm2, ask("x", response_format=fmt))


async def test_logprobs_are_real_probabilities(smollm2: LlamaCppEngine) -> None:
    events = await collect(smollm2, ask("Say hello.", max_tokens=4, logprobs=True, top_logprobs=3))
    deltas = [e for e in events if isinstance(e, TextDelta) and e.logprobs]
    assert deltas
    lp = deltas[0].logprobs[0]
    assert lp.logprob <= 0.0
    assert len(lp.top) == 3
    assert lp.top[0][1] >= lp.top[1][1] >= lp.top[2][1]
    # greedy decoding picks the most likely token
    assert abs(lp.top[0][1] - lp.logprob) < 1e-4


def test_non_gguf_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"this is not a model")
    with pytest.raises(ModelFileError, match="not a GGUF"):
        LlamaCppEngine(bad, name="bad")


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather forecast for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
}
ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
        },
    },
}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [("required", {"get_weather", "add"}), ({"type": "function", "function": {"name": "add"}},
                                            {"add"})],
)
async def test_forced_tool_call_is_well_formed(smollm2: LlamaCppEngine, choice: object,
                                               expected: set[str]) -> None:
    from openwen.messages import ToolCallEvent

    request = ask("What's the weather in Paris for the next 3 days?", tools=(WEATHER, ADD),
                  tool_choice=choice, parallel_tool_calls=False, max_tokens=60)
    events = await collect(smollm2, request)
    calls = [e for e in events if isinstance(e, ToolCallEvent)]
    assert len(calls) == 1
    assert calls[0].call.name in expected
    args = json.loads(calls[0].call.arguments)
    schema = (WEATHER if calls[0].call.name == "get_weather" else ADD)["function"]["parameters"]
    assert set(args) == set(schema["required"])  # type: ignore[index]
    done = events[-1]
    assert isinstance(done, Done) and done.finish_reason == "tool_calls"


async def test_named_tool_choice_must_exist(smollm2: LlamaCppEngine) -> None:
    choice = {"type": "function", "function": {"name": "nope"}}
    with pytest.raises(InvalidRequestError, match="nope"):
        await collect(smollm2, ask("hi", tools=(WEATHER,), tool_choice=choice))


async def test_api_cannot_load_model_files_outside_the_store(tmp_path: Path,
                                                               bundled_model: Path) -> None:
    import shutil

    from openwen.config import load_settings
    from openwen.engines.registry import EngineRegistry
    from openwen.errors import ModelNotFoundError

    outside = tmp_path / "elsewhere" / "copy.gguf"
    outside.parent.mkdir()
    shutil.copy(bundled_model, outside)
    settings = load_settings(n_ctx=512, n_threads=2).settings
    server_side = EngineRegistry(settings)
    with pytest.raises(ModelNotFoundError):
        await server_side.get(str(outside))
    local_cli = EngineRegistry(settings, allow_paths=True)
    try:
        engine = await local_cli.get(str(outside))
        assert engine.models()[0].id == str(outside)
    finally:
        await local_cli.aclose()
        await server_side.aclose()
