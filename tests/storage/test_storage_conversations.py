"""Conversations: create, list order, rename, pin, settings, delete with cascade."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from openwen.errors import InvalidRequestError, NotFoundError
from openwen.storage import Storage, UserRecord
from openwen.storage.models import Message


def test_create_and_get(storage: Storage, alice: UserRecord) -> None:
    chat = storage.conversations.create(
        alice.id,
        "  Trip\nplans ",
        system_prompt="Be brief.",
        settings={"model": "qwen3", "sampling": {"temperature": 0.6}, "thinking": True},
    )
    assert uuid.UUID(chat.id).version == 4
    assert chat.title == "Trip plans"
    assert chat.system_prompt == "Be brief."
    assert chat.settings["sampling"] == {"temperature": 0.6}
    assert chat.current_leaf_id is None and not chat.pinned
    assert storage.conversations.get(alice.id, chat.id) == chat
    assert storage.conversations.create(alice.id).title == "New chat"


def test_list_puts_pinned_first_then_most_recently_updated(
    storage: Storage, alice: UserRecord
) -> None:
    first = storage.conversations.create(alice.id, "first")
    second = storage.conversations.create(alice.id, "second")
    third = storage.conversations.create(alice.id, "third")
    assert [c.title for c in storage.conversations.list_for(alice.id)] == [
        "third",
        "second",
        "first",
    ]
    storage.messages.add(alice.id, first.id, parent_id=None, role="user", content="bump")
    storage.conversations.pin(alice.id, second.id)
    titles = [c.title for c in storage.conversations.list_for(alice.id)]
    assert titles == ["second", "first", "third"]
    assert [c.title for c in storage.conversations.list_for(alice.id, limit=1, offset=1)] == [
        "first"
    ]
    storage.conversations.unpin(alice.id, second.id)
    assert storage.conversations.list_for(alice.id)[0].id == first.id
    assert storage.conversations.count_for(alice.id) == 3
    assert third.id in {c.id for c in storage.conversations.list_for(alice.id)}


def test_pinning_does_not_count_as_an_update(storage: Storage, alice: UserRecord) -> None:
    chat = storage.conversations.create(alice.id, "x")
    pinned = storage.conversations.pin(alice.id, chat.id)
    assert pinned.pinned and pinned.updated_at == chat.updated_at
    renamed = storage.conversations.rename(alice.id, chat.id, "y")
    assert renamed.title == "y" and renamed.updated_at > chat.updated_at


def test_settings_and_system_prompt(storage: Storage, alice: UserRecord) -> None:
    chat = storage.conversations.create(alice.id, settings={"model": "a"})
    updated = storage.conversations.set_settings(
        alice.id, chat.id, {"model": "b", "thinking": False}
    )
    assert updated.settings == {"model": "b", "thinking": False}
    assert storage.conversations.get(alice.id, chat.id).settings == updated.settings
    assert storage.conversations.set_system_prompt(alice.id, chat.id, "New").system_prompt == "New"
    assert storage.conversations.set_system_prompt(alice.id, chat.id, None).system_prompt is None


@pytest.mark.parametrize(
    "bad",
    [
        {"settings": ["not", "an", "object"]},
        {"settings": {"x": float("inf")}},
        {"settings": {"x": object()}},
        {"title": "t" * 501},
        {"system_prompt": 42},
    ],
)
def test_bad_input_stores_nothing(storage: Storage, alice: UserRecord, bad: dict) -> None:
    with pytest.raises(InvalidRequestError):
        storage.conversations.create(alice.id, **bad)
    assert storage.conversations.count_for(alice.id) == 0


def test_delete_cascades_to_messages(storage: Storage, alice: UserRecord) -> None:
    keep = storage.conversations.create(alice.id, "keep")
    doomed = storage.conversations.create(alice.id, "doomed")
    root = storage.messages.add(alice.id, doomed.id, parent_id=None, role="user", content="q")
    storage.messages.add(alice.id, doomed.id, parent_id=root.id, role="assistant", content="a")
    storage.messages.add(alice.id, keep.id, parent_id=None, role="user", content="kept")
    storage.conversations.delete(alice.id, doomed.id)
    with pytest.raises(NotFoundError):
        storage.conversations.get(alice.id, doomed.id)
    with pytest.raises(NotFoundError):
        storage.messages.get(alice.id, root.id)
    with storage.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 1
    assert [m.content for m in storage.messages.path(alice.id, keep.id)] == ["kept"]
    with pytest.raises(NotFoundError):
        storage.conversations.delete(alice.id, doomed.id)


def test_unknown_ids_are_not_found(storage: Storage, alice: UserRecord) -> None:
    for call in (
        lambda: storage.conversations.get(alice.id, str(uuid.uuid4())),
        lambda: storage.conversations.rename(alice.id, "nope", "x"),
        lambda: storage.conversations.pin(alice.id, "' OR 1=1 --"),
        lambda: storage.messages.path(alice.id, "missing"),
    ):
        with pytest.raises(NotFoundError):
            call()
