"""Workspaces are keyed by account id (issue 10, finding 7): a web account named ``local`` does
not share the account-less ``local`` folder; deleting an account through the admin API deletes
its workspace, documents and memories, so a new account of the same name starts empty; folders
of the old name-keyed layout move once, where one account can own them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from webapp_helpers import (
    ScriptedEngine,
    ScriptedRegistry,
    Signed,
    add_user,
    events,
    login,
    make_app,
    signup,
)

from openwen.chat.service import ChatService
from openwen.config import Settings
from openwen.storage import Storage
from openwen.storage.knowledge_models import KnowledgeChunk, KnowledgeDocument, Memory
from openwen.tools.workspaces import LAYOUT_MARKER, migrate_named_workspaces, workspace_dir

KB = "/api/knowledge"


def new_chat(user: Signed) -> str:
    r = user.post("/api/conversations", json={"settings": {}})
    assert r.status_code == 201, r.text
    return str(r.json()["conversation"]["id"])


def run_tool(user: Signed, engine: ScriptedEngine, name: str, args: dict[str, Any]) -> str:
    engine.rounds = [[("call", name, args)], ["Done."]]
    r = user.post(f"/api/conversations/{new_chat(user)}/messages", json={"content": "go"})
    assert r.status_code == 200, r.text
    return str(next(d["message"]["content"] for n, d in events(r.text)
                    if n == "message" and d["message"]["role"] == "tool"))


def signed(app: FastAPI, admin: Signed, name: str) -> tuple[Signed, int]:
    user = add_user(admin.client, admin.headers, name)
    other = TestClient(app)
    return Signed(other, login(other, name)), int(user["id"])


def unconfirmed(settings: Settings, engine: ScriptedEngine, embedder: Any) -> FastAPI:
    """The web app with no tool confirmations (the chat service reads the setting too)."""
    settings = settings.model_copy(update={"tools_confirm": "none"})
    service = ChatService(settings, registry=ScriptedRegistry(engine))  # type: ignore[arg-type]
    return make_app(settings, service, embedder=embedder)


def test_an_account_named_local_has_its_own_workspace(
        settings: Settings, engine: ScriptedEngine,
        embedder: Any) -> None:
    shared = settings.home / "workspaces" / "local"
    shared.mkdir(parents=True)
    (shared / "secret.txt").write_text("the API's file")
    app = unconfirmed(settings, engine, embedder)
    with TestClient(app) as client:
        admin = Signed(client, signup(client, "alice"))
        local, local_id = signed(app, admin, "local")
        seen = run_tool(local, engine, "read_file", {"path": "secret.txt"})
        assert "the API's file" not in seen and "no such file" in seen
        run_tool(local, engine, "write_file", {"path": "mine.txt", "content": "hello"})
    assert (workspace_dir(settings, local_id) / "mine.txt").read_text() == "hello"
    assert not (shared / "mine.txt").exists()


def count(storage: Storage, model: Any, user_id: int) -> int:
    with storage.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(model)
                            .where(model.user_id == user_id)) or 0)


def test_deleting_an_account_deletes_its_workspace_documents_and_memories(
        settings: Settings, engine: ScriptedEngine,
        embedder: Any) -> None:
    app = unconfirmed(settings, engine, embedder)
    with TestClient(app) as client:
        admin = Signed(client, signup(client, "alice"))
        bob, bob_id = signed(app, admin, "bob")
        run_tool(bob, engine, "write_file", {"path": "diary.txt", "content": "bob's secret"})
        added = bob.post(f"{KB}/documents", params={"filename": "notes.md"},
                         content=b"# Notes\n\nBob's bank PIN is 4321.\n",
                         headers={"Content-Type": "application/octet-stream"})
        assert added.status_code == 201, added.text
        assert bob.post(f"{KB}/memories", json={"text": "Bob likes tea."}).status_code == 201
        storage = app.state.webapp.storage
        folder = workspace_dir(settings, bob_id)
        assert (folder / "diary.txt").exists()
        assert count(storage, KnowledgeDocument, bob_id) == 1
        assert count(storage, Memory, bob_id) == 1
        assert count(storage, KnowledgeChunk, bob_id) >= 1

        gone = admin.delete(f"/api/admin/users/{bob_id}")
        assert gone.status_code == 200, gone.text
        assert not folder.exists()
        assert [count(storage, model, bob_id)
                for model in (KnowledgeDocument, KnowledgeChunk, Memory)] == [0, 0, 0]
        with storage.db.read() as s:  # the full-text index forgot the passage too
            assert s.execute(text("SELECT count(*) FROM knowledge_chunks_fts "
                                  "WHERE knowledge_chunks_fts MATCH '4321'")).scalar() == 0

        again, again_id = signed(app, admin, "bob")  # the name (and on SQLite the id) reused
        assert again.get(f"{KB}/documents").json()["documents"] == []
        assert again.get(f"{KB}/memories").json()["memories"] == []
        seen = run_tool(again, engine, "read_file", {"path": "diary.txt"})
        assert "bob's secret" not in seen
        assert not (workspace_dir(settings, again_id) / "diary.txt").exists()


def test_old_name_keyed_folders_move_once_when_unambiguous(tmp_path: Path,
                                                           settings: Settings) -> None:
    root = settings.home / "workspaces"
    for name, content in (("alice", "a"), ("user-7", "ambiguous"), ("carol", "no account")):
        (root / name).mkdir(parents=True)
        (root / name / "f.txt").write_text(content)
    accounts = [(3, "alice"), (7, "Bad Name!"), (9, "user-7")]  # user-7: two claimants
    assert migrate_named_workspaces(settings, accounts) == 1
    assert (workspace_dir(settings, 3) / "f.txt").read_text() == "a"
    assert not (root / "alice").exists()
    assert (root / "user-7" / "f.txt").read_text() == "ambiguous"  # left where it was
    assert not workspace_dir(settings, 7).exists() and not workspace_dir(settings, 9).exists()
    assert (root / "carol").exists() and (root / LAYOUT_MARKER).exists()
    # once: a later folder of that name (the account-less "local", say) never moves
    (root / "alice").mkdir()
    assert migrate_named_workspaces(settings, accounts) == 0
    assert (root / "alice").exists()


def test_the_web_app_migrates_at_startup(settings: Settings, scripted_service: ChatService,
                                         embedder: Any) -> None:
    storage = Storage.open(settings.database)
    dana = storage.users.create("dana", None)
    storage.close()
    old = settings.home / "workspaces" / "dana"
    old.mkdir(parents=True)
    (old / "todo.txt").write_text("buy milk")
    with TestClient(make_app(settings, scripted_service, embedder=embedder)):
        pass
    assert (workspace_dir(settings, dana.id) / "todo.txt").read_text() == "buy milk"
    assert not old.exists()
