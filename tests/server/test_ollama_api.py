"""The Ollama API through the official ``ollama`` Python client against the real server and the
real bundled model, plus the bad inputs an Ollama client can send."""

from __future__ import annotations

import json
from typing import Any

import httpx
import ollama
import pytest
from serverkit import RunningServer

pytestmark = pytest.mark.slow

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}


@pytest.fixture
def oll(api: RunningServer) -> ollama.Client:
    return ollama.Client(host=api.url, timeout=120)


def test_version_tags_show_and_ps(oll: ollama.Client, http: httpx.Client) -> None:
    assert http.get("/api/version").json()["version"]
    names = [m.model for m in oll.list().models]
    assert "smollm2" in names
    shown = oll.show("smollm2:latest")  # Ollama's default tag means the bare name
    assert "completion" in (shown.capabilities or [])
    assert shown.details is not None and shown.details.format == "gguf"
    assert shown.template  # the model's own chat template
    oll.chat(model="smollm2", messages=[{"role": "user", "content": "Hi"}],
             options={"num_predict": 2})
    assert "smollm2" in [m.model for m in oll.ps().models]


def test_chat_streams_and_reports_counts(oll: ollama.Client) -> None:
    parts = list(oll.chat(model="smollm2", stream=True,
                          messages=[{"role": "user", "content": "Say hello."}],
                          options={"num_predict": 12, "temperature": 0, "seed": 1}))
    assert all(not p.done for p in parts[:-1]) and parts[-1].done
    text = "".join(p.message.content or "" for p in parts)
    assert text.strip()
    last = parts[-1]
    assert last.done_reason in ("stop", "length")
    assert last.eval_count and last.eval_count <= 12
    assert last.prompt_eval_count and last.prompt_eval_count > 3
    assert last.total_duration and last.total_duration > 0


def test_chat_without_stream_is_one_object(oll: ollama.Client) -> None:
    reply = oll.chat(model="smollm2", stream=False,
                     messages=[{"role": "system", "content": "You are terse."},
                               {"role": "user", "content": "Name a colour."}],
                     options={"num_predict": 3})
    assert reply.done and reply.done_reason == "length"
    assert reply.eval_count == 3 and reply.message.content


def test_format_json_schema_is_enforced(oll: ollama.Client) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12}},
              "required": ["name"]}
    reply = oll.chat(model="smollm2", format=schema, options={"num_predict": 40},
                     messages=[{"role": "user", "content": "Give me a name as JSON."}])
    assert set(json.loads(reply.message.content or "")) == {"name"}


def test_tool_calls_and_results_go_in_as_ollama_sends_them(oll: ollama.Client) -> None:
    # the history as an Ollama client sends it: a call without an id, a result by tool_name
    slow = ollama.Client(host=str(oll._client.base_url), timeout=600)  # the tools prompt
    followed = slow.chat(model="smollm2", tools=[WEATHER], options={"num_predict": 10},
                        messages=[
                            {"role": "user", "content": "Weather in Paris?"},
                            {"role": "assistant", "content": "", "tool_calls": [
                                {"function": {"name": "get_weather",
                                              "arguments": {"city": "Paris"}}}]},
                            {"role": "tool", "tool_name": "get_weather", "content": "18 C"}])
    assert followed.done


def test_a_tool_result_answers_the_call_of_its_tool_name() -> None:
    from openwen.server.ollama.protocol import ChatRequestBody
    from openwen.server.ollama.translate import chat_request

    body = ChatRequestBody.model_validate({"model": "m", "messages": [
        {"role": "user", "content": "?"},
        {"role": "assistant", "tool_calls": [
            {"function": {"name": "a", "arguments": {"x": 1}}},
            {"function": {"name": "b", "arguments": "{}"}}]},
        {"role": "tool", "tool_name": "a", "content": "A"},
        {"role": "tool", "tool_name": "b", "content": "B"}]})
    messages = chat_request(body).messages
    calls = messages[1].tool_calls
    assert [c.name for c in calls] == ["a", "b"] and calls[0].arguments == '{"x": 1}'
    assert [m.tool_call_id for m in messages[2:]] == [calls[0].id, calls[1].id]


def test_generate_streams_a_response(oll: ollama.Client) -> None:
    parts = list(oll.generate(model="smollm2", prompt="The sky is", stream=True,
                              options={"num_predict": 5}))
    assert parts[-1].done and parts[-1].eval_count == 5
    assert "".join(p.response for p in parts)
    loaded = oll.generate(model="smollm2", prompt="")  # an empty prompt loads the model
    assert loaded.done and loaded.done_reason == "load"


def test_embed(oll: ollama.Client) -> None:
    out = oll.embed(model="all-minilm-l6-v2", input=["hello", "world"])
    assert len(out.embeddings) == 2 and len(out.embeddings[0]) == 384
    assert len(oll.embeddings(model="all-minilm-l6-v2", prompt="hi").embedding) == 384


@pytest.mark.parametrize(("path", "body", "status", "needle"), [
    ("/api/chat", b'{"model": "smollm2", "messages": [', 400, "JSON"),
    ("/api/chat", {"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]},
     404, "no-such-model"),
    ("/api/chat", {"model": "smollm2", "messages": []}, 400, "messages"),
    ("/api/chat", {"model": "smollm2", "messages": [{"role": "wizard", "content": "x"}]},
     400, "role"),
    ("/api/chat", {"model": "smollm2", "format": "yaml",
                   "messages": [{"role": "user", "content": "x"}]}, 400, "format"),
    ("/api/generate", {"prompt": "x"}, 400, "model"),
    ("/api/show", {"model": "nope"}, 404, "nope"),
    ("/api/delete", {"model": "smollm2"}, 400, "bundled"),
])
def test_bad_input_gets_ollamas_error_shape(http: httpx.Client, path: str, body: Any,
                                            status: int, needle: str) -> None:
    method = "DELETE" if path == "/api/delete" else "POST"
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = http.request(method, path, content=content,
                     headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert isinstance(error, str) and needle.lower() in error.lower(), error


def test_client_raises_ollamas_response_error(oll: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        oll.chat(model="missing:7b", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 404 and "missing:7b" in caught.value.error


def test_web_app_api_keeps_its_own_error_shape(http: httpx.Client) -> None:
    r = http.get("/api/conversations")  # the web app's JSON API, not Ollama's
    assert r.status_code == 401
    assert isinstance(r.json()["error"], dict)
