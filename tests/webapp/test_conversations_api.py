"""The conversation and message API: create, stream, branches, rename, pin, settings, search,
export and import, delete, preferences, keys, models."""

from __future__ import annotations

import json

from fastapi import FastAPI
from fastapi.testclient import TestClient
from webapp_helpers import ScriptedEngine, Signed, events


def new_chat(alice: Signed, **body: object) -> str:
    r = alice.post("/api/conversations", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["conversation"]["id"])


def send(alice: Signed, cid: str, content: str, **extra: object) -> dict[str, dict]:
    r = alice.post(f"/api/conversations/{cid}/messages", json={"content": content, **extra})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    return dict(events(r.text))


def test_send_streams_events_and_stores_the_exchange(alice: Signed, engine: ScriptedEngine) -> None:
    engine.script = [("reasoning", "Let me think."), "Hello", " world"]
    cid = new_chat(alice, settings={"temperature": 0.5, "max_tokens": 50})
    r = alice.post(f"/api/conversations/{cid}/messages", json={"content": "Hi!"})
    found = events(r.text)
    names = [name for name, _ in found]
    assert names[0] == "start" and names[-1] == "done"
    assert [d["text"] for n, d in found if n == "text"] == ["Hello", " world"]
    assert [d["text"] for n, d in found if n == "reasoning"] == ["Let me think."]
    start, done = found[0][1], found[-1][1]
    assert start["user_message"]["content"] == "Hi!"
    assert start["message"]["status"] == "streaming"
    assert done["status"] == "complete" and done["message"]["content"] == "Hello world"
    assert done["message"]["reasoning"] == "Let me think."
    data = alice.get(f"/api/conversations/{cid}").json()
    assert [(m["role"], m["content"], m["status"]) for m in data["messages"]] == [
        ("user", "Hi!", "complete"),
        ("assistant", "Hello world", "complete"),
    ]
    assert data["conversation"]["title"] == "Hi!"
    meta = data["messages"][1]["metadata"]
    assert meta["sampling"] == {"temperature": 0.5} and meta["max_tokens"] == 50


def test_errors_before_streaming_are_plain_json(alice: Signed) -> None:
    cid = new_chat(alice)
    r = alice.post(f"/api/conversations/{cid}/messages", json={"content": "  "})
    assert r.status_code == 400 and r.json()["error"]["param"] == "content"
    r = alice.post("/api/conversations/nope/messages", json={"content": "hi"})
    assert r.status_code == 404
    assert alice.get(f"/api/conversations/{cid}").json()["messages"] == []


def test_engine_error_streams_an_error_event(alice: Signed, engine: ScriptedEngine) -> None:
    from openwen.errors import ModelNotFoundError

    engine.script = [ModelNotFoundError("gpt-9", ["scripted"])]
    cid = new_chat(alice)
    found = send(alice, cid, "hi")
    assert "error" in found and found["error"]["error"]["code"] == "model_not_found"
    assert found["error"]["message"]["status"] == "error"


def test_regenerate_edit_and_switch_branches(alice: Signed, engine: ScriptedEngine) -> None:
    cid = new_chat(alice)
    first = send(alice, cid, "Question")
    answer_id = first["start"]["message"]["id"]
    question_id = first["start"]["user_message"]["id"]

    engine.script = ["Another answer"]
    r = alice.post(f"/api/messages/{answer_id}/regenerate")
    again = dict(events(r.text))
    assert again["start"]["user_message"] is None
    new_answer = again["done"]["message"]
    assert new_answer["parent_id"] == question_id
    thread = alice.get(f"/api/conversations/{cid}").json()["messages"]
    assert thread[-1]["content"] == "Another answer"
    assert thread[-1]["sibling_ids"] == [answer_id, new_answer["id"]]

    switched = alice.post(f"/api/messages/{answer_id}/switch").json()
    assert switched["messages"][-1]["id"] == answer_id
    assert (
        alice.get(f"/api/conversations/{cid}").json()["conversation"]["current_leaf_id"]
        == answer_id
    )

    engine.script = ["Edited answer"]
    r = alice.post(f"/api/messages/{question_id}/edit", json={"content": "Better question"})
    edited = dict(events(r.text))
    thread = alice.get(f"/api/conversations/{cid}").json()["messages"]
    assert [m["content"] for m in thread] == ["Better question", "Edited answer"]
    assert thread[0]["sibling_ids"] == [question_id, edited["start"]["user_message"]["id"]]
    r = alice.post(f"/api/messages/{answer_id}/edit", json={"content": "x"})
    assert r.status_code == 400  # only user messages are edited


def test_rename_pin_settings_and_system_prompt(alice: Signed, engine: ScriptedEngine) -> None:
    first = new_chat(alice, title="First")
    second = new_chat(alice, title="Second")
    r = alice.patch(f"/api/conversations/{first}", json={"pinned": True})
    assert r.json()["conversation"]["pinned"] is True
    listed = alice.get("/api/conversations").json()["conversations"]
    assert [c["title"] for c in listed] == ["First", "Second"]  # pinned first
    alice.patch(f"/api/conversations/{second}", json={"title": "  Renamed  "})
    r = alice.patch(
        f"/api/conversations/{second}",
        json={
            "system_prompt": "Answer in French.",
            "settings": {
                "model": "scripted",
                "temperature": 0.7,
                "top_p": 0.8,
                "max_tokens": 9,
                "thinking": False,
            },
        },
    )
    conversation = r.json()["conversation"]
    assert conversation["title"] == "Renamed"
    assert conversation["settings"] == {
        "model": "scripted",
        "temperature": 0.7,
        "top_p": 0.8,
        "max_tokens": 9,
        "thinking": False,
    }
    send(alice, second, "Bonjour")
    request = engine.requests[-1]
    assert request.messages[0].content == "Answer in French."
    assert (request.sampling.temperature, request.max_tokens, request.thinking) == (0.7, 9, False)
    r = alice.patch(f"/api/conversations/{second}", json={"system_prompt": None})
    assert r.json()["conversation"]["system_prompt"] is None
    r = alice.patch(f"/api/conversations/{second}", json={"settings": {"temperature": 5}})
    assert r.status_code == 400  # out of range: nothing changed
    assert (
        alice.get(f"/api/conversations/{second}").json()["conversation"]["settings"]["temperature"]
        == 0.7
    )


def test_search_export_import_and_delete(alice: Signed) -> None:
    cid = new_chat(alice, title="Holiday in Lisbon")
    send(alice, cid, "Where should we eat pastéis de nata?")
    hits = alice.get("/api/search?q=nata").json()["results"]
    assert hits[0]["conversation_id"] == cid
    start, end = hits[0]["highlights"][0]
    assert hits[0]["snippet"][start:end].lower() == "nata"
    assert alice.get("/api/search?q=lisbon").json()["results"][0]["conversation_id"] == cid

    md = alice.get(f"/api/conversations/{cid}/export?format=markdown")
    assert md.headers["content-type"].startswith("text/markdown")
    assert "attachment" in md.headers["content-disposition"]
    assert "# Holiday in Lisbon" in md.text and "pastéis de nata" in md.text
    exported = alice.get(f"/api/conversations/{cid}/export?format=json")
    data = exported.json()
    assert data["format"] == "openwen.conversation" and len(data["tree"]) == 2

    r = alice.post(
        "/api/conversations/import",
        content=exported.content,
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 201
    imported = r.json()
    assert imported["conversation"]["id"] != cid
    assert [m["content"] for m in imported["messages"]] == [m["content"] for m in data["tree"]]
    bad = alice.post(
        "/api/conversations/import",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert bad.status_code == 400
    assert alice.get("/api/conversations").json()["total"] == 2

    assert alice.delete(f"/api/conversations/{cid}").json() == {"ok": True}
    assert alice.get(f"/api/conversations/{cid}").status_code == 404
    assert alice.get("/api/search?q=lisbon").json()["results"][0]["conversation_id"] != cid
    assert alice.delete(f"/api/conversations/{cid}").status_code == 404


def test_stop_endpoint_and_message_lookup(alice: Signed) -> None:
    cid = new_chat(alice)
    found = send(alice, cid, "Hi")
    answer_id = found["start"]["message"]["id"]
    r = alice.post(f"/api/messages/{answer_id}/stop")
    assert r.json()["stopped"] is False and r.json()["message"]["status"] == "complete"
    assert alice.get(f"/api/messages/{answer_id}").json()["message"]["content"] == "Hello there."


def test_preferences_keys_and_models(alice: Signed) -> None:
    r = alice.put(
        "/api/settings", json={"values": {"ui.theme": "dark", "ui.default_model": "scripted"}}
    )
    assert r.json()["values"] == {"ui.theme": "dark", "ui.default_model": "scripted"}
    r = alice.put("/api/settings", json={"values": {"server.open_registration": True}})
    assert r.status_code == 400  # not a user setting
    alice.put("/api/settings", json={"values": {"ui.theme": None}})
    assert alice.get("/api/settings").json()["values"] == {"ui.default_model": "scripted"}

    created = alice.post("/api/keys", json={"name": "laptop"}).json()
    assert created["secret"].startswith("sk-ow-")
    assert created["secret"] not in json.dumps(alice.get("/api/keys").json())
    revoked = alice.delete(f"/api/keys/{created['key']['id']}").json()["key"]
    assert revoked["revoked_at"] is not None
    assert created["key"]["scopes"] == ["inference"]
    agent = alice.post("/api/keys", json={"name": "agent", "scopes": ["tools", "inference"]})
    assert agent.json()["key"]["scopes"] == ["inference", "tools"]
    bad = alice.post("/api/keys", json={"name": "x", "scopes": ["root"]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "scopes"

    models = alice.get("/api/models").json()
    assert models["default"] == "scripted" and models["models"][0]["id"] == "scripted"


def test_signed_out_visitors_reach_nothing(app: FastAPI) -> None:
    anonymous = TestClient(app)
    for method, url in [
        ("GET", "/api/conversations"),
        ("GET", "/api/models"),
        ("GET", "/api/search?q=x"),
        ("GET", "/api/keys"),
        ("GET", "/api/settings"),
        ("GET", "/api/admin/users"),
    ]:
        assert anonymous.request(method, url).status_code == 401, url
