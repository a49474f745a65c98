"""The Anthropic Messages API through the official ``anthropic`` SDK against the real server and
the real bundled model: plain and streamed messages, tools over several rounds, forced tool
use, count_tokens, and bad input in Anthropic's error shape."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import pytest
from serverkit import RunningServer

pytestmark = pytest.mark.slow

WEATHER = {"name": "get_weather", "description": "Weather for a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                            "required": ["city"]}}


@pytest.fixture
def claude(api: RunningServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=api.url, api_key="unused-on-loopback", timeout=600,
                               max_retries=0)


def test_create_a_message(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model="smollm2", max_tokens=6, system="You are terse.",
        messages=[{"role": "user", "content": "List ten colours, one per line."}])
    assert message.type == "message" and message.role == "assistant"
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 6
    assert message.usage.input_tokens > 3
    assert message.content[0].type == "text" and message.content[0].text


def test_stream_events_in_anthropics_order(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model="smollm2", max_tokens=8,
                                messages=[{"role": "user", "content": "Say hello."}]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_start" in kinds and "content_block_stop" in kinds
    assert kinds.index("message_delta") > kinds.index("content_block_stop")
    assert final.stop_reason in ("end_turn", "max_tokens") and final.content[0].type == "text"
    assert final.usage.output_tokens >= 1


@pytest.mark.parametrize("stream", [False, True])
def test_a_stop_sequence_is_reported(claude: anthropic.Anthropic, stream: bool) -> None:
    asked: Any = {"model": "smollm2", "max_tokens": 40, "extra_body": {"temperature": 0},
                  "stop_sequences": ["zzz", "e"],
                  "messages": [{"role": "user", "content": "Describe the sea in a sentence."}]}
    if stream:
        with claude.messages.stream(**asked) as streamed:
            message = streamed.get_final_message()
    else:
        message = claude.messages.create(**asked)
    assert message.stop_reason == "stop_sequence" and message.stop_sequence == "e"
    text = "".join(b.text for b in message.content if b.type == "text")
    assert "e" not in text  # the answer ends before the stop sequence, which is not sent


def test_forced_tool_use_then_a_tool_result_round(claude: anthropic.Anthropic) -> None:
    first = claude.messages.create(
        model="smollm2", max_tokens=60, tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "What is the weather in Paris?"}])
    assert first.stop_reason == "tool_use"
    use = next(b for b in first.content if b.type == "tool_use")
    assert use.name == "get_weather" and isinstance(use.input, dict) and "city" in use.input
    second = claude.messages.create(
        model="smollm2", max_tokens=12, tools=[WEATHER],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "What is the weather in Paris?"},
                  {"role": "assistant", "content": [b.model_dump() for b in first.content]},
                  {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                                "content": "18 C and sunny"}]}])
    assert second.stop_reason in ("end_turn", "max_tokens", "tool_use")


def test_streamed_tool_use_arrives_as_input_json(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(
            model="smollm2", max_tokens=200, tools=[WEATHER],  # type: ignore[list-item]
            tool_choice={"type": "any"},
            messages=[{"role": "user", "content": "Weather in Rome?"}]) as stream:
        final = stream.get_final_message()
    use = next(b for b in final.content if b.type == "tool_use")
    assert use.name == "get_weather" and "city" in use.input  # type: ignore[operator]
    assert final.stop_reason == "tool_use"


def test_count_tokens(claude: anthropic.Anthropic) -> None:
    short = claude.messages.count_tokens(
        model="smollm2", messages=[{"role": "user", "content": "Hi"}])
    longer = claude.messages.count_tokens(
        model="smollm2", messages=[{"role": "user", "content": "Hi there, how are you today?"}])
    assert 0 < short.input_tokens < longer.input_tokens


def test_a_system_message_among_the_messages_is_read(claude: anthropic.Anthropic) -> None:
    """Claude Code sends its environment notes as a ``system`` message after the first user
    message (beyond Anthropic's reference): it is kept, at its place, as Chat Completions does."""
    user: Any = {"role": "user", "content": "Hi"}
    notes: Any = {"role": "system", "content": [{"type": "text", "text": "Platform: linux"}]}
    alone = claude.messages.count_tokens(model="smollm2", messages=[user])
    both = claude.messages.count_tokens(model="smollm2", messages=[user, notes])
    assert both.input_tokens > alone.input_tokens + 3
    message = claude.messages.create(model="smollm2", max_tokens=2, messages=[user, notes])
    assert message.usage.input_tokens + (message.usage.cache_read_input_tokens or 0) \
        == both.input_tokens


def test_x_api_key_is_how_keys_are_sent(api: RunningServer, http: httpx.Client) -> None:
    r = http.post("/v1/messages", json={"model": "smollm2", "max_tokens": 1,
                                        "messages": [{"role": "user", "content": "x"}]},
                  headers={"x-api-key": "ow-not-a-real-key", "anthropic-version": "2023-06-01",
                           "anthropic-beta": "fine-grained-tool-streaming-2025-05-14"})
    assert r.status_code == 200, r.text  # keys are not required on loopback


BASE: dict[str, Any] = {"model": "smollm2", "max_tokens": 4,
                        "messages": [{"role": "user", "content": "x"}]}


@pytest.mark.parametrize(("body", "status", "needle"), [
    (b'{"model": "smollm2", "messages": [', 400, "JSON"),
    ({k: v for k, v in BASE.items() if k != "max_tokens"}, 400, "max_tokens"),
    ({**BASE, "model": "claude-sonnet-9"}, 404, "claude-sonnet-9"),
    ({**BASE, "messages": [{"role": "tool", "content": "x"}]}, 400, "role"),
    ({**BASE, "messages": [{"role": "system", "content": [{"type": "tool_result",
                                                          "tool_use_id": "t"}]}]}, 400, "text"),
    ({**BASE, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": "AA=="}}]}]}, 400, "image"),
    ({**BASE, "tools": [{"type": "web_search_20250305", "name": "web_search"}]}, 400,
     "web_search"),
    ({**BASE, "messages": [{"role": "user", "content": "x" * 40_000}]}, 400, "context"),
])
def test_bad_input_gets_anthropics_error_shape(http: httpx.Client, body: Any, status: int,
                                               needle: str) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = http.post("/v1/messages", content=content, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    data = r.json()
    assert data["type"] == "error" and isinstance(data["error"]["type"], str)
    assert needle.lower() in data["error"]["message"].lower(), data


def test_sdk_raises_its_own_error_types(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        claude.messages.create(model="nope", max_tokens=1,
                               messages=[{"role": "user", "content": "x"}])
    assert "nope" in str(caught.value)
