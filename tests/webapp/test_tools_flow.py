"""Tools in the web chat: the agent's steps stored in the message tree and streamed, tools
switched off per conversation, images from the code interpreter, the step limit, confirmations
(approve, deny, time out, another user's: 404), and once on the real bundled model with a
grammar-forced calculator call."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from webapp_helpers import (
    PLOT,
    ScriptedEngine,
    Signed,
    add_user,
    events,
    login,
    make_app,
    serve,
    signup,
    sse_lines,
)

from openwen.chat.conversations import ConversationChat, StepSaved, TurnEnded, prompt_history
from openwen.chat.service import ChatService
from openwen.config import Settings, load_settings
from openwen.messages import StreamEvent
from openwen.requests import ChatRequest
from openwen.storage import Storage
from openwen.tools.base import FunctionTool
from openwen.tools.builtin.calculator import evaluate, format_number
from openwen.tools.registry import ToolRegistry
from openwen.tools.shared import SharedTools
from openwen.tools.workspaces import workspace_dir

CALC = [("call", "calculator", {"expression": "6*7"})]


def new_chat(user: Signed, **settings: Any) -> str:
    r = user.post("/api/conversations", json={"title": "tools", "settings": settings})
    assert r.status_code == 201, r.text
    return str(r.json()["conversation"]["id"])


def ask(user: Signed, cid: str, text: str) -> list[tuple[str, dict[str, Any]]]:
    r = user.post(f"/api/conversations/{cid}/messages", json={"content": text})
    assert r.status_code == 200, r.text
    return events(r.text)


def test_every_step_is_stored_and_streamed(alice: Signed, engine: ScriptedEngine) -> None:
    cid = new_chat(alice)
    engine.rounds = [CALC, ["It is ", "42."]]
    found = ask(alice, cid, "What is 6 times 7?")
    names = [name for name, _ in found]
    assert names[:3] == ["start", "context", "tool_call"]
    assert names[-3:] == ["text", "text", "done"]
    context = dict(found)["context"]
    assert {"calculator", "run_python", "remember"} <= set(context["tools"])
    saved = [data["message"] for name, data in found if name == "message"]
    step, result, final = saved
    assert step["role"] == "assistant" and step["status"] == "complete"
    assert [c["name"] for c in step["tool_calls"]] == ["calculator"]
    assert step["metadata"]["finish_reason"] == "tool_calls"
    assert result["role"] == "tool" and result["content"] == "42"
    assert result["tool_call_id"] == step["tool_calls"][0]["id"]
    meta = result["metadata"]
    assert meta["name"] == "calculator" and json.loads(meta["arguments"]) == {"expression": "6*7"}
    assert meta["duration_ms"] >= 0 and "error" not in meta and meta["source"] == "builtin"
    assert final["role"] == "assistant" and final["status"] == "streaming"
    done = dict(found)["done"]
    assert done["status"] == "complete" and done["message"]["id"] == final["id"]
    assert done["message"]["content"] == "It is 42."

    # the tree: user -> step -> tool result -> answer, the answer the current leaf
    thread = alice.get(f"/api/conversations/{cid}").json()["messages"]
    assert [(m["role"], m["parent_id"]) for m in thread] == [
        ("user", None), ("assistant", thread[0]["id"]), ("tool", thread[1]["id"]),
        ("assistant", thread[2]["id"])]
    # the model saw the result; the definitions were offered
    second = engine.requests[1]
    assert [m.role for m in second.messages[-2:]] == ["assistant", "tool"]
    assert second.messages[-1].content == "42"
    assert "calculator" in {t["function"]["name"] for t in engine.requests[0].tools}

    # the next turn's prompt is built from the stored steps
    ask(alice, cid, "Thanks")
    prompt = engine.requests[-1].messages
    assert [m.role for m in prompt] == ["user", "assistant", "tool", "assistant", "user"]
    assert prompt[1].tool_calls[0].name == "calculator" and prompt[2].content == "42"
    assert prompt[2].tool_call_id == prompt[1].tool_calls[0].id
    assert (prompt[3].content, prompt[4].content) == ("It is 42.", "Thanks")


def test_regenerating_a_tool_answer_starts_again_from_the_question(
    alice: Signed, engine: ScriptedEngine
) -> None:
    cid = new_chat(alice)
    engine.rounds = [CALC, ["42."]]
    found = ask(alice, cid, "6*7?")
    question = dict(found)["start"]["user_message"]
    first_step = dict(found)["start"]["message"]
    final = dict(found)["done"]["message"]
    r = alice.post(f"/api/messages/{final['id']}/regenerate")
    again = dict(events(r.text))["start"]["message"]
    assert again["parent_id"] == question["id"]
    thread = alice.get(f"/api/conversations/{cid}").json()["messages"]
    assert thread[1]["id"] == again["id"]
    assert thread[1]["sibling_ids"] == [first_step["id"], again["id"]]
    assert engine.requests[-1].messages[-1].content == "6*7?"


def test_tools_can_be_switched_off_for_a_conversation(
    alice: Signed, engine: ScriptedEngine
) -> None:
    cid = new_chat(alice, tools=False)
    found = ask(alice, cid, "Hi")
    assert "context" not in dict(found)
    assert engine.requests[-1].tools == ()
    assert dict(found)["done"]["message"]["content"] == "Hello there."
    # and back on
    alice.patch(f"/api/conversations/{cid}", json={"settings": {"tools": True}})
    ask(alice, cid, "Hi again")
    assert engine.requests[-1].tools


def test_code_interpreter_images_are_kept_with_the_step(
    alice: Signed, engine: ScriptedEngine
) -> None:
    cid = new_chat(alice)
    engine.rounds = [[("call", "run_python", {"code": PLOT})], ["Here is the plot."]]
    found = ask(alice, cid, "Plot squares")
    result = tool_result(found)
    assert "plotted" in result["content"]
    images = result["metadata"]["images"]
    assert images[0]["mime_type"] == "image/png"
    assert base64.b64decode(images[0]["data"]).startswith(b"\x89PNG")


def test_the_step_limit_ends_with_a_plain_message(
    settings: Settings, scripted_service: ChatService, engine: ScriptedEngine, embedder: Any
) -> None:
    from fastapi.testclient import TestClient

    limited = settings.model_copy(update={"agent_max_steps": 2})
    scripted_service.settings = limited
    app = make_app(limited, scripted_service, embedder=embedder)
    with TestClient(app) as client:
        user = Signed(client, signup(client, "alice"))
        cid = new_chat(user)
        engine.rounds = [CALC, CALC]
        found = ask(user, cid, "loop")
    done = dict(found)["done"]
    assert done["finish_reason"] == "length"
    assert "step limit" in done["message"]["content"]
    assert done["message"]["metadata"]["agent_limit"] is True
    assert len(engine.requests) == 2


def test_tools_that_do_not_fit_the_context_are_left_out(
    alice: Signed, engine: ScriptedEngine
) -> None:
    cid = new_chat(alice)
    engine.tools_fit = False
    found = ask(alice, cid, "Hi")
    done = dict(found)["done"]
    assert done["status"] == "complete" and done["message"]["content"] == "Hello there."
    assert done["message"]["metadata"]["tools_dropped"] is True
    assert engine.requests[-1].tools == ()


async def test_stopping_while_a_tool_runs_keeps_a_consistent_tree(
    tmp_path: Path, scripted_service: ChatService, engine: ScriptedEngine
) -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def slow() -> str:
        """Takes its time."""
        started.set()
        try:
            await asyncio.sleep(3600)
        finally:
            cancelled.set()
        return "never"

    storage = Storage.open(f"sqlite:///{tmp_path / 'stop.db'}")
    user = storage.users.create("alice", "hash")
    chat = ConversationChat(storage, scripted_service, save_interval=0.02,
                            tools=lambda uid: ToolRegistry([FunctionTool(slow, name="slow")]))
    conversation = storage.conversations.create(user.id)
    engine.rounds = [[("call", "slow", {})]]
    turn = await chat.send(user.id, conversation.id, "Go slowly")
    await asyncio.wait_for(started.wait(), 60)
    assert await chat.stop(user.id, turn.first_message.id) is True
    await asyncio.wait_for(cancelled.wait(), 60)
    ended = await turn.wait()
    assert ended.status == "incomplete" and ended.finish_reason == "cancelled"
    path = storage.messages.path(user.id, conversation.id)
    assert [(m.role, m.status) for m in path] == [
        ("user", "complete"), ("assistant", "complete"), ("assistant", "incomplete")]
    assert path[1].tool_calls[0].name == "slow" and path[-1].id == ended.message.id
    # the next prompt leaves out the call that never got its result
    assert [m.role for m in prompt_history(path)] == ["user"]
    engine.script = ["Fine."]
    again = await chat.send(user.id, conversation.id, "Never mind")
    await again.wait()
    assert [m.role for m in engine.requests[-1].messages] == ["user", "user"]
    await chat.aclose()
    storage.close()


# -- confirmations (a real server: the answer waits while another request answers) ---------------


@pytest.fixture
def served(settings: Settings, scripted_service: ChatService, embedder: Any
           ) -> Iterator[tuple[FastAPI, str]]:
    app = make_app(settings, scripted_service, embedder=embedder)
    with serve(app) as url:
        yield app, url


def http_user(url: str, name: str, admin: httpx.Client | None = None) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=60)
    if admin is None:
        headers = signup(client, name)  # type: ignore[arg-type]
    else:
        add_user(admin, admin.headers, name)  # type: ignore[arg-type]
        headers = login(client, name)  # type: ignore[arg-type]
    client.headers.update(headers)
    return client


def run_confirming(client: httpx.Client, cid: str, decide: Any) -> list[tuple[str, dict]]:
    """Send a message; on ``tool_confirm`` call ``decide(data)`` while the answer waits."""
    seen = []
    with client.stream("POST", f"/api/conversations/{cid}/messages",
                       json={"content": "Write a note please"}) as r:
        assert r.status_code == 200
        for name, data in sse_lines(r.iter_lines()):
            seen.append((name, data))
            if name == "tool_confirm":
                decide(data)
    return seen


def tool_result(seen: list[tuple[str, dict]]) -> dict[str, Any]:
    return next(d["message"] for n, d in seen if n == "message" and d["message"]["role"] == "tool")


def test_a_side_effecting_tool_waits_for_the_users_answer(
    served: tuple[FastAPI, str], engine: ScriptedEngine, settings: Settings
) -> None:
    app, url = served
    write = [("call", "write_file", {"path": "note.txt", "content": "hello"})]
    alice = http_user(url, "alice")
    bob = http_user(url, "bob", alice)
    with contextlib.closing(alice), contextlib.closing(bob):
        cid = alice.post("/api/conversations", json={}).json()["conversation"]["id"]

        def approve(data: dict[str, Any]) -> None:
            assert data["tool"]["name"] == "write_file" and data["call"]["name"] == "write_file"
            assert json.loads(data["call"]["arguments"]) == {"path": "note.txt", "content": "hello"}
            # another user cannot answer it (404, as for a question that does not exist) ...
            foreign = bob.post(f"/api/tool-confirmations/{data['id']}", json={"approve": True})
            assert foreign.status_code == 404
            # ... nor can a request without the CSRF header
            forged = httpx.post(f"{url}/api/tool-confirmations/{data['id']}",
                                json={"approve": True}, cookies=alice.cookies)
            assert forged.status_code in (401, 403)
            ok = alice.post(f"/api/tool-confirmations/{data['id']}", json={"approve": True})
            assert ok.status_code == 200, ok.text

        engine.rounds = [write, ["Saved."]]
        seen = run_confirming(alice, cid, approve)
        names = [n for n, _ in seen]
        assert names.index("tool_confirm") < names.index("tool_confirmed")
        assert dict(seen)["tool_confirmed"] == {**dict(seen)["tool_confirmed"], "approved": True,
                                                "by": "user"}
        result = tool_result(seen)
        assert result["metadata"]["confirmation"] == "approved"
        assert "error" not in result["metadata"]
        alice_id = app.state.webapp.storage.users.get_by_name("alice").id
        workspace = workspace_dir(settings, alice_id) / "note.txt"
        assert workspace.read_text() == "hello"

        # deny: nothing is written, the model is told
        workspace.unlink()
        engine.rounds = [write, ["Not saved."]]
        seen = run_confirming(alice, cid, lambda data: alice.post(
            f"/api/tool-confirmations/{data['id']}", json={"approve": False}))
        result = tool_result(seen)
        assert result["metadata"]["confirmation"] == "declined"
        assert result["metadata"]["error"] == "declined" and "declined" in result["content"]
        assert not workspace.exists()
        assert dict(seen)["done"]["message"]["content"] == "Not saved."

        # no answer in time is a refusal
        app.state.webapp.chat.confirm_timeout = 0.2
        engine.rounds = [write, ["Gave up."]]
        seen = run_confirming(alice, cid, lambda data: None)
        assert dict(seen)["tool_confirmed"]["by"] == "timeout"
        assert tool_result(seen)["metadata"]["confirmation"] == "timeout"
        assert not workspace.exists()
        # an answer after the question ended finds nothing
        late = alice.post(f"/api/tool-confirmations/{dict(seen)['tool_confirm']['id']}",
                          json={"approve": True})
        assert late.status_code == 404


def test_tools_list_shows_what_needs_confirmation(alice: Signed) -> None:
    tools = {t["name"]: t for t in alice.get("/api/tools").json()["tools"]}
    assert tools["write_file"]["needs_confirmation"] is True
    assert tools["calculator"]["needs_confirmation"] is False
    assert tools["remember"]["source"] == "memory"


# -- the real bundled model ----------------------------------------------------------------------


class ForceCalculator:
    """The real chat service, with the first request's tool_choice naming the calculator (a
    135M model does not call tools unprompted; the grammar makes the call well-formed)."""

    def __init__(self, service: ChatService):
        self.service = service
        self.settings = service.settings
        self.registry = service.registry
        self.forced = False

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        if not self.forced:
            self.forced = True
            choice = {"type": "function", "function": {"name": "calculator"}}
            request = replace(request, tool_choice=choice, parallel_tool_calls=False)
        return self.service.stream(request)


@pytest.mark.slow
async def test_real_model_tool_call_is_run_and_stored(
    tmp_path: Path, real_service: ChatService
) -> None:
    settings = load_settings(home=str(tmp_path / "home"), n_threads=2, n_ctx=2048,
                             agent_max_steps=2).settings
    storage = Storage.open(f"sqlite:///{tmp_path / 'real.db'}")
    user = storage.users.create("alice", "hash")
    shared = SharedTools(settings)
    chat = ConversationChat(storage, ForceCalculator(real_service), save_interval=0.1,  # type: ignore[arg-type]
                            tools=lambda uid: shared.registry("alice").select(["calculator"]))
    conversation = storage.conversations.create(
        user.id, settings={"max_tokens": 40, "temperature": 0.0})
    turn = await chat.send(user.id, conversation.id, "Compute 12 * 7.")
    found = [event async for event in turn.events()]
    await chat.aclose()
    end = found[-1]
    assert isinstance(end, TurnEnded) and end.status == "complete"
    saved = [e.message for e in found if isinstance(e, StepSaved)]
    step, result = saved[0], saved[1]
    assert step.role == "assistant" and step.tool_calls[0].name == "calculator"
    assert result.role == "tool" and result.tool_call_id == step.tool_calls[0].id
    expression = json.loads(step.tool_calls[0].arguments)["expression"]
    try:
        expected = format_number(evaluate(expression))
    except Exception:  # the model may write nonsense; then it is told why
        assert result.metadata["error"] == "tool_error"
    else:
        assert result.content == expected and "error" not in result.metadata
    path = storage.messages.path(user.id, conversation.id)
    assert [m.role for m in path] == ["user", "assistant", "tool", "assistant"]
    assert path[-1].id == end.message.id and path[-1].status == "complete"
    storage.close()


# -- MCP servers marked shared: started once with the app, their tools shared by all -----------

MCP_DEMO = str(Path(__file__).parents[1] / "tools" / "fixtures" / "mcp_demo_server.py")


@pytest.mark.slow
def test_mcp_tools_are_shared_by_every_user(
    settings: Settings, scripted_service: ChatService, engine: ScriptedEngine, embedder: Any
) -> None:
    import sys

    from fastapi.testclient import TestClient

    servers = {"demo": {"command": sys.executable, "args": [MCP_DEMO, "stdio"], "shared": True},
               "broken": {"command": sys.executable, "args": ["-c", "import sys; sys.exit(3)"]}}
    with_mcp = settings.model_copy(update={"mcp": {"servers": servers}})
    app = make_app(with_mcp, scripted_service, embedder=embedder)
    with TestClient(app) as client:
        alice = Signed(client, signup(client, "alice"))
        listed = alice.get("/api/tools").json()
        assert listed["tools"][-1]["name"] != "calculator"
        demo = {t["name"]: t for t in listed["tools"]}["demo__add"]
        assert demo["source"] == "mcp:demo" and demo["needs_confirmation"] is False
        assert "mcp:broken" in listed["problems"]  # reported, not fatal
        engine.rounds = [[("call", "demo__add", {"a": 40, "b": 2})], ["Done."]]
        found = ask(alice, new_chat(alice), "add")
        result = tool_result(found)
        assert result["content"] == "42" and result["metadata"]["source"] == "mcp:demo"
        add_user(alice.client, alice.headers, "bob")
        other = TestClient(app)
        bob = Signed(other, login(other, "bob"))
        assert "demo__add" in {t["name"] for t in bob.get("/api/tools").json()["tools"]}
        shared = app.state.webapp.tools
        assert [t.name for t in shared.mcp_tools].count("demo__add") == 1  # one connection
