"""No user can read or change another user's conversations, messages or keys through any
repository method; a foreign id behaves exactly like a missing one."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from openwen.errors import NotFoundError
from openwen.storage import Storage, UserRecord


@dataclass
class AliceData:
    chat_id: str
    question_id: int
    answer_id: int
    streaming_id: int
    key_id: int
    key_secret: str


@pytest.fixture
def data(storage: Storage, alice: UserRecord) -> AliceData:
    chat = storage.conversations.create(alice.id, "alice secret plans", system_prompt="private")
    q = storage.messages.add(alice.id, chat.id, parent_id=None, role="user", content="treasure map")
    a = storage.messages.add(alice.id, chat.id, parent_id=q.id, role="assistant", content="X")
    s = storage.messages.add(
        alice.id, chat.id, parent_id=q.id, role="assistant", status="streaming", content="..."
    )
    storage.messages.set_current_leaf(alice.id, a.id)
    key = storage.api_keys.create(alice.id, "alice key")
    return AliceData(chat.id, q.id, a.id, s.id, key.key.id, key.secret)


Call = Callable[[Storage, AliceData, int], Any]

# Every user-scoped method, aimed at alice's rows, called as the given user.
FOREIGN_CALLS: dict[str, Call] = {
    "conversations.get": lambda st, d, u: st.conversations.get(u, d.chat_id),
    "conversations.rename": lambda st, d, u: st.conversations.rename(u, d.chat_id, "pwned"),
    "conversations.pin": lambda st, d, u: st.conversations.pin(u, d.chat_id),
    "conversations.unpin": lambda st, d, u: st.conversations.unpin(u, d.chat_id),
    "conversations.set_settings": lambda st, d, u: st.conversations.set_settings(
        u, d.chat_id, {"model": "x"}
    ),
    "conversations.set_system_prompt": lambda st, d, u: st.conversations.set_system_prompt(
        u, d.chat_id, "x"
    ),
    "conversations.delete": lambda st, d, u: st.conversations.delete(u, d.chat_id),
    "messages.add": lambda st, d, u: st.messages.add(
        u, d.chat_id, parent_id=None, role="user", content="x"
    ),
    "messages.get": lambda st, d, u: st.messages.get(u, d.answer_id),
    "messages.path": lambda st, d, u: st.messages.path(u, d.chat_id),
    "messages.thread": lambda st, d, u: st.messages.thread(u, d.chat_id),
    "messages.tree": lambda st, d, u: st.messages.tree(u, d.chat_id),
    "messages.children": lambda st, d, u: st.messages.children(u, d.question_id),
    "messages.siblings": lambda st, d, u: st.messages.siblings(u, d.answer_id),
    "messages.set_current_leaf": lambda st, d, u: st.messages.set_current_leaf(u, d.streaming_id),
    "messages.append": lambda st, d, u: st.messages.append(u, d.streaming_id, content="pwned"),
    "messages.update": lambda st, d, u: st.messages.update(u, d.answer_id, content="pwned"),
    "messages.set_status": lambda st, d, u: st.messages.set_status(u, d.streaming_id, "error"),
    "transfer.export_json": lambda st, d, u: st.transfer.export_json(u, d.chat_id),
    "transfer.export_markdown": lambda st, d, u: st.transfer.export_markdown(u, d.chat_id),
    "api_keys.get": lambda st, d, u: st.api_keys.get(u, d.key_id),
    "api_keys.revoke": lambda st, d, u: st.api_keys.revoke(u, d.key_id),
}


def snapshot(st: Storage, alice: UserRecord, d: AliceData) -> Any:
    return (
        st.conversations.get(alice.id, d.chat_id),
        st.messages.tree(alice.id, d.chat_id),
        st.api_keys.list_for(alice.id),
    )


@pytest.mark.parametrize("method", sorted(FOREIGN_CALLS))
def test_foreign_ids_are_not_found_and_nothing_changes(
    storage: Storage, alice: UserRecord, bob: UserRecord, data: AliceData, method: str
) -> None:
    before = snapshot(storage, alice, data)
    call = FOREIGN_CALLS[method]
    with pytest.raises(NotFoundError) as foreign:
        call(storage, data, bob.id)
    assert snapshot(storage, alice, data) == before
    assert storage.api_keys.verify(data.key_secret) is not None
    # A user id that does not exist at all is refused the same way.
    with pytest.raises(NotFoundError) as missing:
        call(storage, data, 10_000)
    assert foreign.value.message == missing.value.message
    call(storage, data, alice.id)  # the owner can


def test_foreign_ids_look_exactly_like_missing_ones(
    storage: Storage, bob: UserRecord, data: AliceData
) -> None:
    absent_chat = str(uuid.uuid4())
    with pytest.raises(NotFoundError) as foreign:
        storage.conversations.get(bob.id, data.chat_id)
    with pytest.raises(NotFoundError) as missing:
        storage.conversations.get(bob.id, absent_chat)
    assert foreign.value.message.replace(data.chat_id, absent_chat) == missing.value.message
    assert (foreign.value.status, foreign.value.code) == (missing.value.status, missing.value.code)
    with pytest.raises(NotFoundError) as foreign_msg:
        storage.messages.get(bob.id, data.answer_id)
    with pytest.raises(NotFoundError) as missing_msg:
        storage.messages.get(bob.id, 999_999)
    assert foreign_msg.value.message.replace(str(data.answer_id), "999999") == (
        missing_msg.value.message
    )


def test_bob_cannot_graft_onto_alice_messages(
    storage: Storage, bob: UserRecord, data: AliceData
) -> None:
    mine = storage.conversations.create(bob.id, "bob")
    with pytest.raises(NotFoundError):
        storage.messages.add(bob.id, mine.id, parent_id=data.answer_id, role="user", content="x")
    with pytest.raises(NotFoundError):
        storage.messages.path(bob.id, mine.id, leaf_id=data.answer_id)
    assert storage.messages.tree(bob.id, mine.id) == []


def test_lists_and_search_show_only_own_rows(
    storage: Storage, alice: UserRecord, bob: UserRecord, data: AliceData
) -> None:
    storage.conversations.create(bob.id, "bob's treasure")
    assert [c.title for c in storage.conversations.list_for(bob.id)] == ["bob's treasure"]
    assert storage.conversations.count_for(bob.id) == 1
    assert storage.api_keys.list_for(bob.id) == []
    hits = storage.search.search(bob.id, "treasure")
    assert [h.title for h in hits] == ["bob's treasure"]
    assert [h.conversation_id for h in storage.search.search(alice.id, "treasure map")] == [
        data.chat_id
    ]
    assert storage.search.search(bob.id, "secret plans") == []
    assert storage.settings.get_all(bob.id) == {}
