"""No user reaches another user's conversations, messages, keys, settings, documents, passages,
collections, memories or tool confirmations: every web API route is tried with a second user's
session against the first user's ids (404, as for a missing id), and the lists, searches and
exports of the second user show nothing of the first."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from webapp_helpers import Signed, events

BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/conversations/{conversation_id}/messages"): {"content": "hi"},
    ("PATCH", "/api/conversations/{conversation_id}"): {
        "title": "pwned",
        "pinned": True,
        "system_prompt": "x",
        "settings": {"temperature": 1},
    },
    ("POST", "/api/messages/{message_id}/edit"): {"content": "pwned"},
    ("PUT", "/api/messages/{message_id}/feedback"): {"rating": "bad", "edited_content": "pwned"},
    ("PATCH", "/api/knowledge/collections/{name}"): {"name": "pwned"},
    ("PATCH", "/api/knowledge/memories/{memory_id}"): {"text": "pwned"},
    ("POST", "/api/tool-confirmations/{confirmation_id}"): {"approve": True},
}
ADMIN_ONLY = {"/api/admin/users/{user_id}", "/api/admin/users", "/api/admin/registration",
              "/api/models/policy",
              # training is the admins' by default (tune_users): tests/tune/test_api.py
              "/api/tune/jobs/{name}", "/api/tune/jobs/{name}/cancel",
              "/api/tune/jobs/{name}/merge"}
# routes without an id of someone else's data in their path: checked by what they return
UNSCOPED = {
    "/api/session",
    # the model library is the server's, not a user's: changing it is checked in test_models_api
    "/api/models/catalog",
    "/api/models/downloads",
    "/api/models/remove",
    "/api/models/default",
    "/api/models/profile",
    "/api/models/derive",
    "/api/tune",
    "/api/tune/jobs",
    "/api/auth/signup",
    "/api/auth/login",
    "/api/auth/logout",
    "/api/auth/password",
    "/api/conversations",
    "/api/conversations/import",
    "/api/search",
    "/api/models",
    "/api/settings",
    "/api/keys",
    "/api/tools",
    "/api/knowledge/documents",
    "/api/knowledge/collections",
    "/api/knowledge/search",
    "/api/knowledge/context",
    "/api/knowledge/memories",
    "/api/knowledge/memory/settings",
}
KB = "/api/knowledge"
LEASE = (
    "# Lease\n\n## Rent\n\nRent is due on the first day of each month.\n\n## Pets\n\n"
    "One cat is allowed.\n"
)


def api_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) of the web API, from the app's OpenAPI document."""
    paths = app.openapi()["paths"]
    return sorted(
        (method.upper(), path)
        for path, methods in paths.items()
        if path.startswith("/api/")
        for method in methods
    )


def alices_things(alice: Signed) -> dict[str, Any]:
    created = alice.post("/api/conversations", json={"title": "Alice's secret plans"}).json()
    cid = created["conversation"]["id"]
    r = alice.post(f"/api/conversations/{cid}/messages", json={"content": "my bank pin"})
    start = dict(events(r.text))["start"]
    key = alice.post("/api/keys", json={"name": "alice laptop"}).json()["key"]
    alice.put("/api/settings", json={"values": {"ui.theme": "dark"}})
    doc = alice.post(
        f"{KB}/documents",
        params={"filename": "lease.md", "collection": "alice-home"},
        content=LEASE.encode(),
    ).json()["document"]
    alice.put(f"{KB}/conversations/{cid}/documents/{doc['id']}")
    passage = alice.post(f"{KB}/search", json={"query": "rent"}).json()["passages"][0]
    memory = alice.post(f"{KB}/memories", json={"text": "Alice's bank pin is 1234"}).json()
    return {
        "conversation_id": cid,
        "message_ids": [start["user_message"]["id"], start["message"]["id"]],
        "key_id": key["id"],
        "user_id": alice.get("/api/session").json()["user"]["id"],
        "document_id": doc["id"],
        "chunk_id": passage["chunk_id"],
        "name": "alice-home",
        "memory_id": memory["id"],
        "confirmation_id": "not-a-question",  # a real one: test_tools_flow
        "job_id": 987654,  # downloads are the server's: test_models_api
    }


def test_every_route_with_an_id_is_404_for_another_user(
    app: FastAPI, alice: Signed, bob: Signed
) -> None:
    mine = alices_things(alice)
    before = alice.get(f"/api/conversations/{mine['conversation_id']}").json()
    tried = set()
    for method, path in api_routes(app):
        params = set(re.findall(r"{(\w+)}", path))
        if not params:
            assert path in UNSCOPED | ADMIN_ONLY, f"new route {method} {path}: add it here"
            continue
        known = mine.keys() | {"message_id"}
        assert params <= known, f"new route {method} {path}: give alice's ids for it"
        for variant in mine["message_ids"] if "message_id" in params else [None]:
            ids = {**mine, "message_id": variant}
            url = re.sub(r"{(\w+)}", lambda m, ids=ids: str(ids[m.group(1)]), path)
            body = BODIES.get((method, path), {} if method in ("POST", "PATCH", "PUT") else None)
            r = bob.client.request(method, url, json=body, headers=bob.headers)
            expected = 403 if path in ADMIN_ONLY else 404
            assert r.status_code == expected, f"{method} {url} -> {r.status_code}: {r.text}"
            tried.add((method, path))
    assert len(tried) >= 25  # conversation, message, key, user, knowledge, confirmation routes

    # exports too (their format parameter is a query string)
    for fmt in ("markdown", "json"):
        r = bob.get(f"/api/conversations/{mine['conversation_id']}/export?format={fmt}")
        assert r.status_code == 404
    # alice's data is untouched
    after = alice.get(f"/api/conversations/{mine['conversation_id']}").json()
    assert after == before
    assert after["conversation"]["title"] == "Alice's secret plans"
    keys = alice.get("/api/keys").json()["keys"]
    assert keys[0]["revoked_at"] is None
    assert [c["name"] for c in alice.get(f"{KB}/collections").json()["collections"]] == [
        "alice-home"]
    assert alice.get(f"{KB}/documents/{mine['document_id']}").json()["filename"] == "lease.md"
    assert [m["text"] for m in alice.get(f"{KB}/memories").json()["memories"]] == [
        "Alice's bank pin is 1234"]


def test_lists_search_keys_and_settings_show_only_your_own(alice: Signed, bob: Signed) -> None:
    mine = alices_things(alice)
    assert bob.get("/api/conversations").json() == {"conversations": [], "total": 0}
    assert bob.get("/api/search?q=secret").json()["results"] == []
    assert bob.get("/api/search?q=bank").json()["results"] == []
    assert bob.get("/api/keys").json()["keys"] == []
    assert bob.get("/api/settings").json()["values"] == {}
    assert bob.get(f"{KB}/documents").json()["documents"] == []
    assert bob.get(f"{KB}/collections").json()["collections"] == []
    assert bob.get(f"{KB}/memories").json()["memories"] == []
    assert bob.post(f"{KB}/search", json={"query": "rent"}).json()["passages"] == []
    context = bob.post(f"{KB}/context", json={"query": "what is alice's bank pin"}).json()
    assert context["memories"] == [] and context["citations"] == []
    # alice's documents are not bob's sources, even through a conversation id
    r = bob.get(f"{KB}/documents", params={"conversation_id": mine["conversation_id"]})
    assert r.status_code == 404
    bob_chat = bob.post("/api/conversations", json={}).json()["conversation"]["id"]
    found = events(bob.post(f"/api/conversations/{bob_chat}/messages",
                            json={"content": "What is my bank pin? Rent?"}).text)
    assert "context" not in dict(found) or not dict(found)["context"]["memories"]
    # alice does find her own
    hits = alice.get("/api/search?q=bank").json()["results"]
    assert [h["conversation_id"] for h in hits] == [mine["conversation_id"]]
    # bob's new things do not show up for alice
    bob.post("/api/conversations", json={"title": "Bob's"})
    assert [c["title"] for c in alice.get("/api/conversations").json()["conversations"]] == [
        "Alice's secret plans"
    ]


def test_the_same_id_missing_and_foreign_look_alike(alice: Signed, bob: Signed) -> None:
    mine = alices_things(alice)
    foreign = bob.get(f"/api/conversations/{mine['conversation_id']}")
    missing = bob.get("/api/conversations/00000000-0000-0000-0000-000000000000")
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json()["error"]["type"] == missing.json()["error"]["type"]
    foreign = bob.get(f"/api/messages/{mine['message_ids'][0]}")
    missing = bob.get("/api/messages/987654")
    assert foreign.status_code == missing.status_code == 404
