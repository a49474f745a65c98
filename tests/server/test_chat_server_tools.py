"""Server-side tools through /v1/chat/completions, only for requests that opt in with the
``openwen`` extension field; without it the client's tools pass through untouched and the
server never runs a tool. A scripted engine plays the model for the loop's logic (a 135M model
cannot be steered). Server tools are on here (``api_server_tools``) and requests carry a key
with the ``tools`` scope; what happens without either is tested below and, against a real
``openwen serve``, in tests/security/test_attacks.py (where the real bundled model also makes a
grammar-forced calculator call)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from serverkit import RunningServer, json_events, running_server, server_settings, sse_events

from openwen.chat.service import ChatService
from openwen.config import Settings
from openwen.engines.base import Capabilities, Engine, ModelInfo
from openwen.engines.registry import EngineRegistry
from openwen.messages import Done, StreamEvent, TextDelta, ToolCall, ToolCallEvent, Usage
from openwen.requests import ChatRequest
from openwen.server.auth import open_database
from openwen.storage.credentials import ApiKeyRepo
from openwen.storage.users import UserRepo

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
CALCULATOR_LOOKALIKE = {"type": "function", "function": {"name": "calculator", "parameters": {
    "type": "object", "properties": {"expression": {"type": "string"}}}}}


def call(name: str, args: dict[str, Any], n: int = 0) -> list[StreamEvent]:
    return [ToolCallEvent(0, ToolCall(f"call_{name}_{n}", name, json.dumps(args))),
            Done("tool_calls", Usage(10, 5))]


def text(words: str) -> list[StreamEvent]:
    return [TextDelta(words), Done("stop", Usage(20, 3))]


class RoundsEngine:
    """Each request gets the next scripted round."""

    name = "scripted"
    capabilities = Capabilities(tools=True)

    def __init__(self) -> None:
        self.rounds: list[list[StreamEvent]] = []
        self.requests: list[ChatRequest] = []

    def models(self) -> list[ModelInfo]:
        return [ModelInfo(id=self.name)]

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        self.requests.append(request)
        for event in self.rounds.pop(0):
            yield event

    def count_tokens(self, request: ChatRequest) -> int:
        return 1

    async def aclose(self) -> None:
        return None


class OneEngine(EngineRegistry):
    def __init__(self, settings: Settings, engine: RoundsEngine):
        super().__init__(settings)
        self.engine = engine

    async def list_models(self) -> list[ModelInfo]:
        return self.engine.models()

    def loaded(self) -> list[Engine]:
        return [self.engine]  # type: ignore[list-item]

    async def get(self, model: str | None) -> Engine:
        return self.engine  # type: ignore[return-value]


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Any]]:
    settings = server_settings(Path(tmp_path_factory.mktemp("server-tools")), model="scripted",
                               api_server_tools=True)
    db = open_database(settings)
    user = UserRepo(db).create("tester", None)
    keys = ApiKeyRepo(db)
    KEYS["tools"] = keys.create(user.id, "tools", ("inference", "tools")).secret
    KEYS["plain"] = keys.create(user.id, "plain").secret
    db.dispose()
    engine = RoundsEngine()
    service = ChatService(settings, registry=OneEngine(settings, engine))
    with running_server(settings, service=service) as server:
        yield server, engine


KEYS: dict[str, str] = {}


def post(server: RunningServer, key: str | None = "tools", **body: Any) -> httpx.Response:
    body.setdefault("messages", [{"role": "user", "content": "go"}])
    headers = {"Authorization": f"Bearer {KEYS[key]}"} if key else {}
    return httpx.post(f"{server.v1}/chat/completions", json=body, timeout=60, headers=headers)


def test_without_the_opt_in_tools_pass_through_and_nothing_runs(scripted: Any) -> None:
    server, engine = scripted
    engine.rounds = [call("calculator", {"expression": "6*7"})]
    r = post(server, tools=[CALCULATOR_LOOKALIKE])
    body = r.json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "calculator"
    assert "openwen" not in body and len(engine.requests) == 1
    assert engine.requests[-1].tools == (CALCULATOR_LOOKALIKE,)


def test_opted_in_the_server_runs_its_tools(scripted: Any) -> None:
    server, engine = scripted
    engine.requests.clear()
    engine.rounds = [call("calculator", {"expression": "6*7"}), text("It is 42.")]
    r = post(server, openwen={"tools": ["calculator"]})
    assert r.status_code == 200, r.text
    body = r.json()
    message = body["choices"][0]["message"]
    assert message["content"] == "It is 42." and "tool_calls" not in message
    assert body["choices"][0]["finish_reason"] == "stop"
    step = body["openwen"]["tool_steps"][0]
    assert (step["name"], step["content"], step["error"]) == ("calculator", "42", None)
    assert [t["function"]["name"] for t in engine.requests[0].tools] == ["calculator"]
    assert engine.requests[1].messages[-1].role == "tool"
    assert body["usage"]["completion_tokens"] == 8  # both rounds


def test_opted_in_stream_carries_steps_as_extension_chunks(scripted: Any) -> None:
    server, engine = scripted
    engine.rounds = [[TextDelta("Let me see."), *call("calculator", {"expression": "2+2"})],
                     text("Four.")]
    body = {"messages": [{"role": "user", "content": "2+2?"}], "stream": True,
            "openwen": {"tools": True}}
    with httpx.stream("POST", f"{server.v1}/chat/completions", json=body, timeout=60,
                      headers={"Authorization": f"Bearer {KEYS['tools']}"}) as r:
        payloads = list(sse_events(r.iter_lines()))
    assert payloads[-1] == "[DONE]"
    chunks = json_events(payloads)
    assert len({c["id"] for c in chunks}) == 1
    steps = [c["openwen"] for c in chunks if "openwen" in c]
    assert list(steps[0]) == ["tool_call"] and steps[0]["tool_call"]["name"] == "calculator"
    assert steps[1]["tool_result"]["content"] == "4"
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert not any("tool_calls" in d for d in deltas)
    assert "".join(d.get("content") or "" for d in deltas) == "Let me see.\n\nFour."
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_client_tools_stay_the_clients_beside_server_tools(scripted: Any) -> None:
    server, engine = scripted
    engine.rounds = [call("calculator", {"expression": "1+1"}),
                     call("get_weather", {"city": "Paris"}, 1)]
    r = post(server, tools=[WEATHER], openwen={"tools": ["calculator"]})
    body = r.json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    calls = choice["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather"]
    assert body["openwen"]["tool_steps"][0]["name"] == "calculator"
    # a client tool named like a server tool stays the client's
    engine.rounds = [call("calculator", {"expression": "1+1"})]
    r = post(server, tools=[CALCULATOR_LOOKALIKE], openwen={"tools": True})
    assert r.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "calculator"
    assert r.json()["openwen"]["tool_steps"] == []


def test_side_effecting_tools_are_not_run_without_someone_to_ask(
    scripted: Any, tmp_path: Path
) -> None:
    server, engine = scripted
    engine.rounds = [call("write_file", {"path": "x.txt", "content": "hi"}), text("Could not.")]
    body = post(server, openwen={"tools": ["write_file"]}).json()
    step = body["openwen"]["tool_steps"][0]
    assert step["error"] == "declined" and "confirmation" in step["content"]
    home = server.app.state.settings.home
    assert not (home / "workspaces" / "local" / "x.txt").exists()


def test_bad_opt_ins_are_clear_errors(scripted: Any) -> None:
    server, _ = scripted
    r = post(server, openwen={"tools": ["no_such_tool"]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "openwen.tools"
    assert "calculator" in r.json()["error"]["message"]
    r = post(server, openwen={"tools": ["bad name!"]})
    assert r.status_code == 400
    r = post(server, openwen={"tools": ["calculator"]},
             tool_choice={"type": "function", "function": {"name": "get_weather"}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "tool_choice"


def test_server_tools_need_the_tools_scope_and_a_key(scripted: Any) -> None:
    server, engine = scripted
    before = len(engine.requests)
    r = post(server, key="plain", openwen={"tools": ["calculator"]})
    assert r.status_code == 403 and r.json()["error"]["code"] == "missing_scope"
    r = post(server, key=None, openwen={"tools": True})
    assert r.status_code == 403 and r.json()["error"]["code"] == "api_key_required"
    assert len(engine.requests) == before  # refused before the model was asked
    engine.rounds = [text("plain answers still work")]
    assert post(server, key="plain").status_code == 200


def test_server_tools_are_off_by_default(api: RunningServer) -> None:
    r = httpx.post(f"{api.v1}/chat/completions", timeout=60, json={
        "model": "smollm2", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}],
        "openwen": {"tools": ["calculator"]}})
    assert r.status_code == 403, r.text
    error = r.json()["error"]
    assert error["code"] == "server_tools_disabled" and error["param"] == "openwen.tools"
    assert "api_server_tools" in error["message"]
