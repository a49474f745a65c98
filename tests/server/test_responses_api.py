"""The OpenAI Responses API through the official openai client against the real server and model."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter
from serverkit import RunningServer, running_server, server_settings
from test_errors_api import assert_error

from openwen.storage import Storage

pytestmark = pytest.mark.slow

EVENTS = TypeAdapter(ResponseStreamEvent)
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"]}}


def raw_response(http: httpx.Client, **body: Any) -> dict[str, Any]:
    body.setdefault("model", "smollm2")
    response = http.post("/v1/responses", json=body)
    assert response.status_code == 200, response.text
    Response.model_validate(response.json())
    return response.json()  # type: ignore[no-any-return]


def test_create_with_a_string_input(client: openai.OpenAI) -> None:
    response = client.responses.create(model="smollm2", input="Say hello.",
                                       max_output_tokens=8, temperature=0)
    assert response.object == "response" and response.id.startswith("resp_")
    assert response.status in ("completed", "incomplete")
    assert response.model == "smollm2"
    message = response.output[-1]
    assert message.type == "message" and message.role == "assistant"
    assert response.output_text and response.output_text == message.content[0].text  # type: ignore[union-attr]
    usage = response.usage
    assert usage is not None and usage.input_tokens > 3 and 1 <= usage.output_tokens <= 8
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert response.store is True and response.max_output_tokens == 8
    again = client.responses.retrieve(response.id)
    assert again.output_text == response.output_text and again.status == response.status


def test_items_instructions_and_stored_input_items(client: openai.OpenAI) -> None:
    items: Any = [
        {"role": "user", "content": "My name is Ada."},
        {"type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": "Hello Ada."}]},
        {"type": "message", "role": "user",
         "content": [{"type": "input_text", "text": "What is my name?"}]},
    ]
    response = client.responses.create(model="smollm2", input=items, max_output_tokens=8,
                                       instructions="Answer in one short sentence.",
                                       metadata={"case": "items"})
    assert response.instructions == "Answer in one short sentence."
    assert response.metadata == {"case": "items"}
    listed = list(client.responses.input_items.list(response.id, order="asc", limit=2))
    assert [i.type for i in listed] == ["message"] * 3  # three pages followed by the SDK
    texts = [i.content[0].text for i in listed]  # type: ignore[union-attr]
    assert texts == ["My name is Ada.", "Hello Ada.", "What is my name?"]
    page = client.responses.input_items.list(response.id, limit=2)  # newest first by default
    assert page.has_more and [i.content[0].text for i in page.data] == [  # type: ignore[union-attr]
        "What is my name?", "Hello Ada."]


def test_streaming_event_sequence(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="smollm2", input="Say hello.",
                                          max_output_tokens=10, stream=True))
    numbers = [e.sequence_number for e in events]
    assert numbers == list(range(len(events)))
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress",
                         "response.output_item.added", "response.content_part.added"]
    assert kinds[-4:-1] == ["response.output_text.done", "response.content_part.done",
                            "response.output_item.done"]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response  # type: ignore[union-attr]
    assert deltas and final.output_text == deltas
    assert events[0].response.status == "in_progress"  # type: ignore[union-attr]
    stored = client.responses.retrieve(final.id)
    assert stored.output_text == deltas and stored.status == final.status


def test_stream_wire_format(http: httpx.Client) -> None:
    body = {"model": "smollm2", "input": "Hi", "max_output_tokens": 3, "stream": True}
    with http.stream("POST", "/v1/responses", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    names = [line[len("event: "):] for line in lines if line.startswith("event: ")]
    payloads = [json.loads(line[len("data: "):]) for line in lines if line.startswith("data: ")]
    assert names == [p["type"] for p in payloads]  # every event is named by its type
    for payload in payloads:
        EVENTS.validate_python(payload)
    assert "[DONE]" not in "".join(lines)


def test_function_call_then_its_output_continues_the_chain(client: openai.OpenAI) -> None:
    first = client.responses.create(
        model="smollm2", input="What is the weather in Paris?", tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="required", max_output_tokens=60)
    calls = [item for item in first.output if item.type == "function_call"]
    assert calls and calls[0].name == "get_weather"
    assert isinstance(json.loads(calls[0].arguments)["city"], str)  # grammar-enforced
    follow = client.responses.create(
        model="smollm2", previous_response_id=first.id, tools=[WEATHER],  # type: ignore[list-item]
        input=[{"type": "function_call_output", "call_id": calls[0].call_id,
                "output": "Sunny, 22 degrees"}], max_output_tokens=20)
    assert follow.previous_response_id == first.id
    assert follow.output_text and follow.output[-1].type == "message"
    assert follow.usage is not None and first.usage is not None
    assert follow.usage.input_tokens > first.usage.input_tokens


def test_streamed_function_call_events(client: openai.OpenAI) -> None:
    events = list(client.responses.create(
        model="smollm2", input="Weather in Rome?", tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "function", "name": "get_weather"}, max_output_tokens=60,
        stream=True))
    kinds = [e.type for e in events]
    assert "response.function_call_arguments.delta" in kinds
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    added = next(e for e in events if e.type == "response.output_item.added"
                 and e.item.type == "function_call")
    assert added.item.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(done.arguments)  # type: ignore[union-attr]
    final = events[-1].response  # type: ignore[union-attr]
    assert final.status == "completed"
    assert [o.type for o in final.output][-1] == "function_call"


def test_json_schema_output_is_grammar_enforced(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}},
              "required": ["answer"], "additionalProperties": False}
    response = client.responses.create(
        model="smollm2", input="What is 2 + 2? Reply in JSON.", max_output_tokens=40,
        text={"format": {"type": "json_schema", "name": "sum", "schema": schema,
                         "strict": True}})
    assert isinstance(json.loads(response.output_text)["answer"], int)
    assert response.text is not None and response.text.format is not None
    assert response.text.format.type == "json_schema"
    plain = client.responses.create(model="smollm2", input="Give me a JSON object.",
                                    max_output_tokens=60, text={"format": {"type": "json_object"}})
    if plain.status == "completed":
        assert isinstance(json.loads(plain.output_text), dict)
    else:  # the tiny model rambled past the limit: still JSON as far as it went
        assert plain.incomplete_details is not None
        assert plain.incomplete_details.reason == "max_output_tokens"
        assert plain.output_text.lstrip().startswith("{")


def test_previous_response_chain_reuses_the_prefix_cache(client: openai.OpenAI) -> None:
    one = client.responses.create(model="smollm2", input="My name is Ada. Remember it.",
                                  max_output_tokens=12, temperature=0)
    two = client.responses.create(model="smollm2", input="What is my name?",
                                  previous_response_id=one.id, max_output_tokens=12)
    assert one.usage is not None and two.usage is not None
    # the earlier turn (its input and its output) is part of the new prompt
    assert two.usage.input_tokens >= one.usage.input_tokens + one.usage.output_tokens
    assert two.usage.input_tokens_details.cached_tokens >= one.usage.input_tokens // 2
    three = client.responses.create(model="smollm2", input="And again?",
                                    previous_response_id=two.id, max_output_tokens=5)
    assert three.usage is not None and three.usage.input_tokens > two.usage.input_tokens


def test_store_false_is_not_kept(client: openai.OpenAI) -> None:
    response = client.responses.create(model="smollm2", input="Hi", max_output_tokens=3,
                                       store=False)
    assert response.store is False and response.output_text
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="smollm2", input="Hi", previous_response_id=response.id)


def test_delete(client: openai.OpenAI, http: httpx.Client) -> None:
    response = client.responses.create(model="smollm2", input="Hi", max_output_tokens=3)
    deleted = http.delete(f"/v1/responses/{response.id}")
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    assert_error(http.delete(f"/v1/responses/{response.id}"), 404)
    client.responses.create(model="smollm2", input="Hi", max_output_tokens=3)  # still fine


def poll(client: openai.OpenAI, response_id: str, *, seconds: float = 120) -> Response:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        current = client.responses.retrieve(response_id)
        if current.status not in ("queued", "in_progress"):
            return current
        time.sleep(0.2)
    raise AssertionError(f"response {response_id} did not finish in {seconds} s")


def test_background_poll(client: openai.OpenAI) -> None:
    started = client.responses.create(model="smollm2", input="Say hello.",
                                      max_output_tokens=20, background=True)
    assert started.background is True and started.status in ("queued", "in_progress")
    finished = poll(client, started.id)
    assert finished.status in ("completed", "incomplete") and finished.output_text


def test_background_cancel(client: openai.OpenAI, http: httpx.Client) -> None:
    started = client.responses.create(
        model="smollm2", input="Count from one to one thousand, one number per line.",
        max_output_tokens=1500, background=True, temperature=0)
    cancelled = client.responses.cancel(started.id)
    assert cancelled.status == "cancelled"
    assert client.responses.retrieve(started.id).status == "cancelled"
    # a foreground response cannot be cancelled
    done = client.responses.create(model="smollm2", input="Hi", max_output_tokens=2)
    assert_error(http.post(f"/v1/responses/{done.id}/cancel"), 400)
    # the engine is free again
    assert client.responses.create(model="smollm2", input="Hi", max_output_tokens=2).output_text


def test_unknown_fields_as_codex_sends_them(http: httpx.Client) -> None:
    body = {
        "model": "smollm2", "instructions": "You are a coding agent.", "stream": False,
        "input": [{"type": "message", "role": "developer",
                   "content": [{"type": "input_text", "text": "Sandbox: read-only."}]},
                  {"type": "message", "role": "user",
                   "content": [{"type": "input_text", "text": "Hi"}]},
                  {"type": "reasoning", "summary": [], "encrypted_content": "opaque"},
                  {"type": "web_search_call", "id": "ws_1", "status": "completed"},
                  {"type": "message", "role": "user",
                   "content": [{"type": "input_text", "text": "Say hi."}]}],
        "tools": [WEATHER, {"type": "custom", "name": "apply_patch", "format": {}},
                  {"type": "web_search"}],
        "tool_choice": "auto", "parallel_tool_calls": False, "store": False,
        "include": ["reasoning.encrypted_content"], "prompt_cache_key": "abc",
        "reasoning": {"effort": "medium", "summary": "auto"},
        "client_metadata": {"x": "y"}, "service_tier": "auto",
        "max_output_tokens": 10_000_000,  # above what the context leaves: clamped
    }
    response = raw_response(http, **body)
    assert response["status"] in ("completed", "incomplete")
    assert response["parallel_tool_calls"] is False and response["store"] is False


# -- bad input -----------------------------------------------------------------------------------


def test_malformed_json_and_wrong_types(http: httpx.Client) -> None:
    bad = http.post("/v1/responses", content=b'{"input": "hi",',
                    headers={"content-type": "application/json"})
    assert_error(bad, 400, code="invalid_json")
    assert_error(http.post("/v1/responses", json={"input": "hi", "temperature": "hot"}), 400,
                 param="temperature")
    assert_error(http.post("/v1/responses", json={"input": 5}), 400, param="input")
    assert_error(http.post("/v1/responses", json={"input": "hi", "max_output_tokens": 0}), 400,
                 param="max_output_tokens")
    image = [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]
    error = assert_error(http.post("/v1/responses", json={"input": image}), 400)
    assert str(error["param"]).startswith("input[0].content")
    assert_error(http.post("/v1/responses", json={"input": []}), 400, param="input")
    assert_error(http.post("/v1/responses", json={"input": "hi", "background": True,
                                                  "store": False}), 400, param="background")
    assert_error(http.post("/v1/responses", json={
        "input": "hi", "tools": [WEATHER], "tool_choice": {"type": "function", "name": "nope"}}),
        400, param="tool_choice")


def test_unknown_model_and_unknown_ids(client: openai.OpenAI, http: httpx.Client) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.create(model="no-such-model", input="Hi")
    assert isinstance(info.value.body, dict) and info.value.body["code"] == "model_not_found"
    assert_error(http.get("/v1/responses/resp_nope"), 404)
    assert_error(http.get("/v1/responses/resp_nope/input_items"), 404)
    assert_error(http.post("/v1/responses/resp_nope/cancel"), 404)
    assert_error(http.post("/v1/responses", json={"input": "hi",
                                                  "previous_response_id": "resp_nope"}),
                 404, param="previous_response_id")
    assert_error(http.get("/v1/responses/resp_nope/input_items?limit=0"), 400)


def test_context_overflow_and_oversized_body(api: RunningServer, http: httpx.Client) -> None:
    long = "lorem ipsum " * 3000
    assert_error(http.post("/v1/responses", json={"input": long}), 400, param="input",
                 code="context_length_exceeded")
    assert_error(http.post("/v1/responses", json={"input": long, "stream": True}), 400,
                 code="context_length_exceeded")
    big = b'{"input": "' + b"a" * (api.app.state.settings.max_body_bytes + 10) + b'"}'
    assert_error(http.post("/v1/responses", content=big,
                           headers={"content-type": "application/json"}), 413,
                 code="payload_too_large")


# -- durable, and per user -----------------------------------------------------------------------


def test_responses_survive_a_restart(tmp_path: Path) -> None:
    settings = server_settings(tmp_path / "home")
    with running_server(settings) as server:
        client = server.client()
        first = client.responses.create(model="smollm2", input="My name is Ada.",
                                        max_output_tokens=8)
    with running_server(settings) as server:
        client = server.client()
        again = client.responses.retrieve(first.id)
        assert again.output_text == first.output_text and again.id == first.id
        follow = client.responses.create(model="smollm2", input="What is my name?",
                                         previous_response_id=first.id, max_output_tokens=8)
        assert follow.usage is not None and first.usage is not None
        assert follow.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens
        items = list(client.responses.input_items.list(first.id))
        assert [i.content[0].text for i in items] == ["My name is Ada."]  # type: ignore[union-attr]


def test_another_users_response_is_a_404(tmp_path: Path) -> None:
    settings = server_settings(tmp_path / "home", require_api_key=True)
    storage = Storage.open(settings.database)
    try:
        keys = {}
        for name in ("alice", "bob"):
            user = storage.users.create(name, None)
            keys[name] = storage.api_keys.create(user.id, "test").secret
    finally:
        storage.close()
    with running_server(settings) as server:
        alice, bob = server.client(api_key=keys["alice"]), server.client(api_key=keys["bob"])
        mine = alice.responses.create(model="smollm2", input="Hi", max_output_tokens=3)
        assert alice.responses.retrieve(mine.id).id == mine.id
        with pytest.raises(openai.NotFoundError):
            bob.responses.retrieve(mine.id)
        with pytest.raises(openai.NotFoundError):
            bob.responses.delete(mine.id)
        with pytest.raises(openai.NotFoundError):
            bob.responses.input_items.list(mine.id)
        with pytest.raises(openai.NotFoundError):
            bob.responses.create(model="smollm2", input="Hi", previous_response_id=mine.id)
        with pytest.raises(openai.AuthenticationError):
            server.client(api_key="wrong").responses.retrieve(mine.id)
        assert alice.responses.retrieve(mine.id).output_text == mine.output_text
