"""Stored Responses API responses: owners, chains, retention, recovery (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from openwen.errors import NotFoundError
from openwen.storage import Storage, UserRecord
from openwen.storage.response_models import StoredResponse


def body(rid: str, status: str = "completed", text: str = "hi") -> dict[str, object]:
    return {"id": rid, "object": "response", "status": status,
            "output": [{"type": "message", "role": "assistant", "id": f"msg_{rid}",
                        "status": "completed",
                        "content": [{"type": "output_text", "text": text, "annotations": []}]}]}


def test_save_get_update_delete_per_owner(storage: Storage, alice: UserRecord,
                                          bob: UserRecord) -> None:
    repo = storage.responses
    items = [{"type": "message", "role": "user", "id": "msg_1",
              "content": [{"type": "input_text", "text": "Hi"}]}]
    repo.save(alice.id, "resp_a", status="in_progress", body=body("resp_a", "in_progress"),
              input_items=items, background=True)
    record = repo.get(alice.id, "resp_a")
    assert record.status == "in_progress" and record.background and record.input_items == items
    repo.save(alice.id, "resp_a", status="completed", body=body("resp_a"))
    record = repo.get(alice.id, "resp_a")
    assert record.status == "completed" and record.input_items == items  # kept on update
    for other in (bob.id, None):  # another user, and the keyless local API
        with pytest.raises(NotFoundError):
            repo.get(other, "resp_a")
        with pytest.raises(NotFoundError):
            repo.delete(other, "resp_a")
        with pytest.raises(NotFoundError):
            repo.save(other, "resp_a", status="failed", body={})
    assert repo.get(alice.id, "resp_a").status == "completed"  # nothing changed
    repo.delete(alice.id, "resp_a")
    with pytest.raises(NotFoundError):
        repo.get(alice.id, "resp_a")


def test_keyless_owner_is_its_own_space(storage: Storage, alice: UserRecord) -> None:
    repo = storage.responses
    repo.save(None, "resp_local", status="completed", body=body("resp_local"))
    assert repo.get(None, "resp_local").user_id is None
    with pytest.raises(NotFoundError):
        repo.get(alice.id, "resp_local")


def test_chain_oldest_first_and_a_missing_link(storage: Storage, alice: UserRecord,
                                               bob: UserRecord) -> None:
    repo = storage.responses
    repo.save(alice.id, "r1", status="completed", body=body("r1"))
    repo.save(alice.id, "r2", status="completed", body=body("r2"), previous_response_id="r1")
    repo.save(alice.id, "r3", status="completed", body=body("r3"), previous_response_id="r2")
    assert [r.id for r in repo.chain(alice.id, "r3")] == ["r1", "r2", "r3"]
    with pytest.raises(NotFoundError):
        repo.chain(bob.id, "r3")
    repo.delete(alice.id, "r1")
    with pytest.raises(NotFoundError):
        repo.chain(alice.id, "r3")


def test_retention_and_recovery(storage: Storage, alice: UserRecord) -> None:
    repo = storage.responses
    repo.save(alice.id, "old", status="completed", body=body("old"))
    repo.save(alice.id, "new", status="completed", body=body("new"))
    repo.save(alice.id, "running", status="in_progress", body=body("running", "in_progress"))
    with storage.db.write() as s:
        s.execute(update(StoredResponse).where(StoredResponse.id == "old")
                  .values(created_at=datetime.now(UTC) - timedelta(days=40)))
    assert repo.purge_before(datetime.now(UTC) - timedelta(days=30)) == 1
    with pytest.raises(NotFoundError):
        repo.get(alice.id, "old")
    assert repo.recover_interrupted("the server stopped") == 1
    running = repo.get(alice.id, "running")
    assert running.status == "failed" and running.body["status"] == "failed"
    assert running.body["error"] == {"code": "server_error", "message": "the server stopped"}
    assert repo.get(alice.id, "new").status == "completed"


def test_deleting_the_user_deletes_their_responses(storage: Storage, alice: UserRecord) -> None:
    storage.responses.save(alice.id, "resp_x", status="completed", body=body("resp_x"))
    storage.users.delete(alice.id)
    with pytest.raises(NotFoundError):
        storage.responses.get(alice.id, "resp_x")
