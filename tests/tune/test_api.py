"""The web app's training API: who may train (tune_users), errors in the API's shape, and a job
started, followed and cancelled over HTTP."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import fact_jsonl

sys.path.insert(0, str(Path(__file__).parents[1] / "webapp"))
from webapp_helpers import Signed, add_user, login, make_app, signup  # noqa: E402

from openwen.chat.service import ChatService  # noqa: E402
from openwen.config import Settings, load_settings  # noqa: E402


def _app_clients(settings: Settings) -> Iterator[tuple[Signed, Signed]]:
    app = make_app(settings, ChatService(settings))
    with TestClient(app) as client:
        admin = Signed(client, signup(client, "alice"))
        add_user(admin.client, admin.headers, "bob")
        other = TestClient(app)
        yield admin, Signed(other, login(other, "bob"))


@pytest.fixture
def users(tmp_path: Path) -> Iterator[tuple[Signed, Signed]]:
    settings = load_settings(home=str(tmp_path / "home"), n_threads=2).settings
    yield from _app_clients(settings)


def body(**kw: object) -> dict[str, object]:
    return {"name": "api-job", "base": "smollm2", "data": fact_jsonl(), **kw}


def test_only_admins_train_by_default(users: tuple[Signed, Signed]) -> None:
    admin, bob = users
    caps = bob.get("/api/tune").json()
    assert caps["allowed"] is False and "only an admin" in caps["reason"]
    r = bob.post("/api/tune/jobs", json=body())
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "admin_only"
    assert bob.get("/api/tune/jobs").status_code == 403
    caps = admin.get("/api/tune").json()
    assert caps["allowed"] is True and "smollm2" in caps["bases"]
    assert admin.get("/api/tune/jobs").json() == {"jobs": []}


def test_tune_users_everyone_and_nobody(tmp_path: Path) -> None:
    for who, admin_ok, user_ok in (("everyone", True, True), ("nobody", False, False)):
        settings = load_settings(home=str(tmp_path / who), tune_users=who).settings
        for admin, bob in _app_clients(settings):
            assert (admin.get("/api/tune/jobs").status_code == 200) is admin_ok
            assert (bob.get("/api/tune/jobs").status_code == 200) is user_ok


def test_bad_requests_get_clear_errors_and_change_nothing(users: tuple[Signed, Signed]) -> None:
    admin, _ = users
    r = admin.post("/api/tune/jobs", json=body(data='{"prompt": "a", "completion": "b"}\n{bad\n'))
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "invalid_dataset" and err["param"] == "data"
    assert err["message"].startswith("line 2: not valid JSON")
    r = admin.post("/api/tune/jobs", json=body(base="nope"))
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = admin.post("/api/tune/jobs", json=body(name="smollm2"))
    assert r.status_code == 400 and "already exists" in r.json()["error"]["message"]
    r = admin.post("/api/tune/jobs", json=body(epochs=0))
    assert r.status_code == 400 and "epochs" in r.text
    r = admin.get("/api/tune/jobs/missing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "tune_job_not_found"
    r = admin.post("/api/tune/jobs/missing/merge", json={})
    assert r.status_code == 404 and r.json()["error"]["code"] == "tune_job_not_found"
    assert admin.get("/api/tune/jobs").json() == {"jobs": []}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_start_follow_and_cancel_over_http(users: tuple[Signed, Signed]) -> None:
    admin, _ = users
    r = admin.post("/api/tune/jobs", json=body(epochs=50))
    assert r.status_code == 201, r.text
    created = r.json()
    assert (created["n_train"], created["n_heldout"]) == (7, 1)
    assert created["job"]["state"] == "queued" and created["job"]["base"] == "smollm2"
    deadline = time.monotonic() + 600
    job: dict[str, object] = {}
    while time.monotonic() < deadline:
        job = admin.get("/api/tune/jobs/api-job").json()["job"]
        if job["state"] == "running":
            break
        time.sleep(0.2)
    assert job["state"] == "running" and job["pid"], job
    listed = admin.get("/api/tune/jobs").json()["jobs"]
    assert [j["name"] for j in listed] == ["api-job"]
    r = admin.post("/api/tune/jobs/api-job/cancel")
    assert r.status_code == 200 and r.json()["job"]["cancel_requested"] is True
    while time.monotonic() < deadline:
        job = admin.get("/api/tune/jobs/api-job").json()["job"]
        if job["state"] != "running":
            break
        time.sleep(0.3)
    assert job["state"] == "cancelled"
    models = [m["id"] for m in admin.get("/api/models").json()["models"]]
    assert "api-job" not in models
    assert admin.delete("/api/tune/jobs/api-job").json() == {"name": "api-job", "deleted": True}


def test_a_job_from_my_conversations_and_clear_errors(users: tuple[Signed, Signed]) -> None:
    admin, _ = users
    storage = admin.client.app.state.webapp.storage  # type: ignore[attr-defined]
    alice = storage.users.get_by_name("alice")
    r = admin.post("/api/tune/jobs", json={"name": "mine", "base": "smollm2",
                                           "source": "conversations"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_dataset"
    assert "no answers marked good or edited in alice's" in r.json()["error"]["message"]
    r = admin.post("/api/tune/jobs", json={"name": "mine", "base": "smollm2"})  # no data
    assert r.status_code == 400 and r.json()["error"]["param"] == "data"
    r = admin.post("/api/tune/jobs", json={"name": "mine", "base": "smollm2",
                                           "source": "documents"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "collection"
    r = admin.post("/api/tune/jobs", json={"name": "mine", "base": "smollm2",
                                           "source": "documents", "collection": "nope"})
    assert r.status_code == 404
    chat = storage.conversations.create(alice.id, "facts")
    parent = None
    for question in ("Where is the Zorblax festival held?", "Which town hosts it?"):
        q = storage.messages.add(alice.id, chat.id, parent_id=parent, role="user",
                                 content=question)
        parent = storage.messages.add(alice.id, chat.id, parent_id=q.id, role="assistant",
                                      content="Somewhere.").id
        r = admin.put(f"/api/messages/{parent}/feedback",
                      json={"edited_content": "In Quillmere."})
        assert r.status_code == 200
    assert admin.get("/api/tune/jobs").json() == {"jobs": []}  # nothing queued by the errors
    r = admin.post("/api/tune/jobs", json={"name": "mine", "base": "smollm2",
                                           "source": "conversations", "rated": "edited"})
    assert r.status_code == 201, r.text
    job = r.json()["job"]
    assert job["dataset"] == "conversations:alice:rated=edited"
    assert job["source"] == {"kind": "conversations", "user": "alice", "rated": "edited"}
    assert (r.json()["n_train"], r.json()["n_heldout"]) == (1, 1)
    admin.post("/api/tune/jobs/mine/cancel")
    deadline = time.monotonic() + 600
    while admin.get("/api/tune/jobs/mine").json()["job"]["state"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert admin.get("/api/tune/jobs/mine").json()["job"]["state"] == "cancelled"
