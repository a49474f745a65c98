"""Several instances over one store: heartbeats, answer owners, the sweep and cancel flags
(SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import update

from openwen.storage import Storage, UserRecord
from openwen.storage.base import utcnow
from openwen.storage.cluster import Instance
from openwen.storage.records import ConversationRecord


@pytest.fixture
def chat(storage: Storage, alice: UserRecord) -> ConversationRecord:
    return storage.conversations.create(alice.id)


def _streaming(storage: Storage, user: UserRecord, chat: ConversationRecord, owner: str | None
               ) -> int:
    storage.instance_id = owner
    question = storage.messages.add(user.id, chat.id, parent_id=None, role="user", content="Q")
    answer = storage.messages.add(user.id, chat.id, parent_id=question.id, role="assistant",
                                  status="streaming", content="partial")
    return answer.id


def _age_heartbeat(storage: Storage, instance_id: str, seconds: float) -> None:
    with storage.db.write() as s:
        s.execute(update(Instance).where(Instance.id == instance_id)
                  .values(heartbeat_at=utcnow() - timedelta(seconds=seconds)))


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_sweep_marks_only_answers_of_instances_whose_lease_expired(
    storage: Storage, alice: UserRecord, chat: ConversationRecord
) -> None:
    instances = storage.instances
    instances.register("live", host="other-host", pid=1)
    instances.register("dead", host="other-host", pid=2)
    live = _streaming(storage, alice, chat, "live")
    dead = _streaming(storage, alice, chat, "dead")
    _age_heartbeat(storage, "dead", 60)
    assert instances.owner(live) == "live"
    assert instances.sweep(30, me="live") == 1
    assert storage.messages.get(alice.id, dead).status == "incomplete"
    assert storage.messages.get(alice.id, dead).content == "partial"
    assert storage.messages.get(alice.id, live).status == "streaming"
    assert instances.sweep(30, me="live") == 0  # nothing more to do
    instances.heartbeat("live")
    assert instances.live(30) == ["live"]


def test_answers_of_a_removed_instance_and_old_ownerless_ones_are_marked(
    storage: Storage, alice: UserRecord, chat: ConversationRecord
) -> None:
    storage.instances.register("me")
    gone = _streaming(storage, alice, chat, "never-registered")
    fresh_ownerless = _streaming(storage, alice, chat, None)
    assert storage.instances.sweep(30, me="me") == 1
    assert storage.messages.get(alice.id, gone).status == "incomplete"
    # an answer of an older version without an owner waits for the lease
    assert storage.messages.get(alice.id, fresh_ownerless).status == "streaming"
    assert storage.instances.sweep(0.000001, me="me") == 1
    assert storage.messages.get(alice.id, fresh_ownerless).status == "incomplete"


def test_an_instance_of_this_host_whose_process_died_is_gone_at_once(
    storage: Storage, alice: UserRecord, chat: ConversationRecord
) -> None:
    storage.instances.register("killed", pid=_dead_pid())
    answer = _streaming(storage, alice, chat, "killed")
    storage.instances.register("restarted")
    assert storage.instances.sweep(3600, me="restarted") == 1
    assert storage.messages.get(alice.id, answer).status == "incomplete"
    assert "killed" not in storage.instances.live(3600)


def test_a_heartbeat_after_being_taken_for_dead_registers_again(storage: Storage) -> None:
    storage.instances.register("slow", host="other-host", pid=1)
    storage.instances.remove("slow")
    assert storage.instances.heartbeat("slow") is False
    assert storage.instances.heartbeat("slow") is True
    assert storage.instances.live() == ["slow"]


def test_cancel_flags(storage: Storage, alice: UserRecord, chat: ConversationRecord) -> None:
    answer = _streaming(storage, alice, chat, "writer")
    ownerless = _streaming(storage, alice, chat, None)
    assert not storage.instances.cancel_requested([answer])
    assert storage.instances.request_cancel(answer)
    assert storage.instances.cancel_requested([answer, 999_999])
    assert not storage.instances.request_cancel(ownerless)
    assert not storage.instances.cancel_requested([])


def test_finished_messages_get_no_owner(storage: Storage, alice: UserRecord,
                                        chat: ConversationRecord) -> None:
    storage.instance_id = "writer"
    done = storage.messages.add(alice.id, chat.id, parent_id=None, role="user", content="hi")
    assert storage.instances.owner(done.id) is None


def test_our_own_pid_from_before_this_process_started_is_gone(
    storage: Storage, alice: UserRecord, chat: ConversationRecord
) -> None:
    """A restarted container: same host name, same pid (often 1), another instance id."""
    storage.instances.register("before-restart", pid=os.getpid())
    with storage.db.write() as s:
        s.execute(update(Instance).where(Instance.id == "before-restart")
                  .values(started_at=utcnow() - timedelta(days=1)))
    answer = _streaming(storage, alice, chat, "before-restart")
    storage.instances.register("same-process")  # registered now: alive
    alive = _streaming(storage, alice, chat, "same-process")
    assert storage.instances.sweep(3600, me="after-restart") == 1
    assert storage.messages.get(alice.id, answer).status == "incomplete"
    assert storage.messages.get(alice.id, alive).status == "streaming"
