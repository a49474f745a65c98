"""Documents and memory in the web chat: attach a file to a conversation, the sources go late
into the prompt (not into what is stored) and the answer keeps its citations, which point at the
passage's text; a collection picked in the settings; "remember that ..." and recall; clear
errors for bad uploads; the upload route is exempt from the app's body limit."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient
from webapp_helpers import ScriptedEngine, ScriptedRegistry, Signed, events, signup

from openwen.chat.service import ChatService
from openwen.chat.turn_knowledge import USER_MESSAGE_HEADER
from openwen.config import Settings
from openwen.knowledge.context import HEADER, MEMORY_HEADER, SOURCES_HEADER
from openwen.server.application import create_app

LEASE = (
    "# Apartment lease\n\n## Pets\n\nTenants may keep one cat or one small dog, with the "
    "landlord's written approval. Reptiles are not allowed.\n\n## Rent\n\nRent is due on "
    "the first day of each month. A late fee of 40 dollars applies after the fifth day.\n\n"
    "## Heating\n\nThe boiler is serviced every October by the building manager.\n"
)
KB = "/api/knowledge"


def upload(user: Signed, name: str, body: bytes, **params: str) -> Any:
    return user.post(f"{KB}/documents", params={"filename": name, **params}, content=body,
                     headers={"Content-Type": "application/octet-stream"})


def new_chat(user: Signed, **settings: Any) -> str:
    r = user.post("/api/conversations", json={"system_prompt": "Be brief.", "settings": settings})
    return str(r.json()["conversation"]["id"])


def test_an_attached_document_is_cited_and_its_passage_found(
    alice: Signed, engine: ScriptedEngine
) -> None:
    cid = new_chat(alice, tools=False)
    added = upload(alice, "lease.md", LEASE.encode(), conversation_id=cid)
    assert added.status_code == 201, added.text
    doc = added.json()["document"]
    assert doc["conversations"] == [cid]
    listed = alice.get(f"{KB}/documents", params={"conversation_id": cid}).json()["documents"]
    assert [d["filename"] for d in listed] == ["lease.md"]

    engine.script = ["Rent is due on the first day [1]."]
    found = events(alice.post(f"/api/conversations/{cid}/messages",
                              json={"content": "When is rent due?"}).text)
    context = dict(found)["context"]
    citation = context["citations"][0]
    assert citation["number"] == 1 and citation["document_id"] == doc["id"]
    assert citation["filename"] == "lease.md" and "excerpt" in citation

    # the sources went late into the prompt: after the system prompt and history, inside the
    # newest user message, before the user's own words ...
    prompt = engine.requests[-1].messages
    assert prompt[0].content == "Be brief."
    last = prompt[-1].content
    assert last.startswith(HEADER) and SOURCES_HEADER in last and "Rent is due on" in last
    assert last.endswith(f"{USER_MESSAGE_HEADER}\nWhen is rent due?")
    # ... and are not stored as the user's message
    thread = alice.get(f"/api/conversations/{cid}").json()["messages"]
    assert thread[0]["content"] == "When is rent due?"
    answer = thread[-1]
    assert answer["metadata"]["citations"][0]["document_id"] == doc["id"]

    # the citation leads to its passage in the document's text
    text = alice.get(f"{KB}/documents/{doc['id']}/text").json()["text"]
    start, end = citation["char_start"], citation["char_end"]
    assert "Rent is due on the first day of each month" in text[start:end]

    # the next turn's prompt starts exactly as this one did (the prefix cache keeps hitting)
    engine.script = ["Forty dollars [1]."]
    alice.post(f"/api/conversations/{cid}/messages", json={"content": "And the late fee?"})
    again = engine.requests[-1].messages
    assert again[1].content == "When is rent due?" and again[0] == prompt[0]

    # detached: no more sources
    detached = alice.delete(f"{KB}/conversations/{cid}/documents/{doc['id']}")
    assert detached.json()["removed"] is True
    alice.post(f"/api/conversations/{cid}/messages", json={"content": "Pets?"})
    assert engine.requests[-1].messages[-1].content == "Pets?"

    # deleting a conversation with an attachment keeps the document among the user's
    alice.put(f"{KB}/conversations/{cid}/documents/{doc['id']}")
    assert alice.delete(f"/api/conversations/{cid}").status_code == 200
    assert [d["id"] for d in alice.get(f"{KB}/documents").json()["documents"]] == [doc["id"]]


def long_handbook() -> str:
    """A document too long for whole-document mode: passages are retrieved and cited."""
    topics = ["garden", "parking", "laundry", "bicycles", "recycling", "visitors", "keys",
              "noise", "balconies", "storage", "mail", "elevators"]
    parts = ["# Tenant handbook\n"]
    for topic in topics:
        parts.append(f"## {topic.title()}\n\n" + " ".join(
            f"Rule {n} about the {topic}: residents keep the {topic} tidy and respect the "
            f"posted hours for the {topic}." for n in range(1, 7)) + "\n")
        if topic == "keys":
            parts.append("## Rent\n\nRent is due on the first day of each month, paid by bank "
                         "transfer to the building cooperative.\n")
    return "\n".join(parts)


def test_a_long_document_is_cited_by_passage(alice: Signed, engine: ScriptedEngine) -> None:
    cid = new_chat(alice, tools=False)
    doc = upload(alice, "handbook.md", long_handbook().encode(),
                 conversation_id=cid).json()["document"]
    assert doc["chunks"] > 5
    engine.script = ["By bank transfer [1]."]
    found = events(alice.post(f"/api/conversations/{cid}/messages",
                              json={"content": "How is the rent paid?"}).text)
    citations = dict(found)["context"]["citations"]
    rent = next(c for c in citations if c["section"] and "Rent" in c["section"])
    assert rent["chunk_id"] is not None
    passage = alice.get(f"{KB}/passages/{rent['chunk_id']}").json()
    text = alice.get(f"{KB}/documents/{doc['id']}/text").json()["text"]
    assert text[rent["char_start"]:rent["char_end"]] == passage["text"]
    assert "bank transfer" in passage["text"]
    assert len(citations) < doc["chunks"]  # top passages, not the whole document


def test_a_collection_picked_in_the_settings_is_used(alice: Signed, engine: ScriptedEngine) -> None:
    assert alice.post(f"{KB}/collections", json={"name": "home"}).status_code == 201
    upload(alice, "lease.md", LEASE.encode(), collection="home")
    cid = new_chat(alice, tools=False, collection="home")
    alice.post(f"/api/conversations/{cid}/messages", json={"content": "Can I keep a cat?"})
    assert "Tenants may keep one cat" in engine.requests[-1].messages[-1].content
    # a collection that is gone does not break the chat; the answer says why sources are missing
    alice.delete(f"{KB}/collections/home")
    found = events(alice.post(f"/api/conversations/{cid}/messages",
                              json={"content": "And a dog?"}).text)
    done = dict(found)["done"]
    assert done["status"] == "complete" and "knowledge_error" in done["message"]["metadata"]
    assert engine.requests[-1].messages[-1].content == "And a dog?"


def test_remember_that_is_stored_and_recalled(alice: Signed, engine: ScriptedEngine) -> None:
    cid = new_chat(alice, tools=False)
    found = events(alice.post(f"/api/conversations/{cid}/messages",
                              json={"content": "Remember that my cat is called Pixel."}).text)
    assert dict(found)["context"]["remembered"]["text"] == "My cat is called Pixel."
    memories = alice.get(f"{KB}/memories").json()["memories"]
    assert [(m["text"], m["source"]) for m in memories] == [("My cat is called Pixel.", "chat")]
    other = new_chat(alice, tools=False)
    alice.post(f"/api/conversations/{other}/messages", json={"content": "What is my cat called?"})
    last = engine.requests[-1].messages[-1].content
    assert MEMORY_HEADER in last and "- My cat is called Pixel." in last
    # memory switched off: neither stored nor recalled
    alice.put(f"{KB}/memory/settings", json={"enabled": False})
    alice.post(f"/api/conversations/{other}/messages", json={"content": "What is my cat called?"})
    assert engine.requests[-1].messages[-1].content == "What is my cat called?"


def test_automatic_extraction_runs_after_the_answer_when_switched_on(
    alice: Signed, engine: ScriptedEngine
) -> None:
    cid = new_chat(alice, tools=False)
    engine.rounds = [["Lisbon is lovely."]]
    alice.post(f"/api/conversations/{cid}/messages", json={"content": "I live in Lisbon."})
    assert alice.get(f"{KB}/memories").json()["memories"] == []  # off by default
    assert len(engine.requests) == 1
    alice.put(f"{KB}/memory/settings", json={"auto_extract": True})
    engine.rounds = [["Porto too."], ["- The user lives in Lisbon."]]
    alice.post(f"/api/conversations/{cid}/messages", json={"content": "I work in Porto."})
    deadline = time.monotonic() + 60  # a safety net: extraction runs after the answer
    while not (memories := alice.get(f"{KB}/memories").json()["memories"]):
        assert time.monotonic() < deadline, "nothing was extracted"
        time.sleep(0.05)
    assert [(m["text"], m["source"]) for m in memories] == [
        ("The user lives in Lisbon.", "extracted")]
    assert engine.requests[-1].messages[-1].content == "I work in Porto."


def test_bad_uploads_are_clear_errors(alice: Signed) -> None:
    cid = new_chat(alice)
    unsupported = upload(alice, "virus.exe", b"MZ", conversation_id=cid)
    assert unsupported.status_code == 400
    assert unsupported.json()["error"]["code"] == "unsupported_document_type"
    empty = upload(alice, "empty.txt", b"", conversation_id=cid)
    assert empty.status_code == 400 and "empty" in empty.json()["error"]["message"]
    corrupt = upload(alice, "broken.pdf", b"%PDF-1.4 broken", conversation_id=cid)
    assert corrupt.status_code == 400 and corrupt.json()["error"]["param"] == "file"
    assert alice.get(f"{KB}/documents").json()["documents"] == []  # nothing half-indexed
    # no CSRF header: refused before anything is read
    forged = alice.client.post(f"{KB}/documents", params={"filename": "a.txt"}, content=b"hi")
    assert forged.status_code == 403


def test_uploads_pass_the_body_limit_and_stop_at_their_own(
    settings: Settings, engine: ScriptedEngine, embedder: Any
) -> None:
    small = settings.model_copy(update={"max_body_bytes": 4096, "document_max_bytes": 40_000})
    service = ChatService(small, registry=ScriptedRegistry(engine))  # type: ignore[arg-type]
    app = create_app(small, service=service)
    app.state.webapp.embedder = embedder
    assert f"{KB}/documents" in app.state.body_limit_exempt
    big_text = ("The lighthouse keeper logs the weather every evening. " * 200).encode()
    assert 4096 < len(big_text) < 40_000
    with TestClient(app, base_url="http://127.0.0.1") as client:  # the guard wants loopback
        user = Signed(client, signup(client, "alice"))
        r = upload(user, "log.txt", big_text)
        assert r.status_code == 201, r.text
        too_big = upload(user, "huge.txt", b"word " * 10_000)
        assert too_big.status_code == 413
        assert too_big.json()["error"]["code"] == "document_too_large"
        # the limit still guards every other route
        long = user.post("/api/conversations", json={"title": "x" * 5000})
        assert long.status_code == 413
