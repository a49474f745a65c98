"""Thumbs up/down and edited answers (``message_feedback``), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from openwen.errors import InvalidRequestError, NotFoundError
from openwen.storage import ConversationRecord, Storage, UserRecord


@pytest.fixture
def chat(storage: Storage, alice: UserRecord) -> ConversationRecord:
    return storage.conversations.create(alice.id, "rated")


def _exchange(storage: Storage, user: UserRecord, chat: ConversationRecord, question: str,
              answer: str, parent: int | None = None) -> tuple[int, int]:
    q = storage.messages.add(user.id, chat.id, parent_id=parent, role="user", content=question)
    a = storage.messages.add(user.id, chat.id, parent_id=q.id, role="assistant", content=answer)
    return q.id, a.id


def test_rating_toggles_and_an_edit_keeps_the_original(
        storage: Storage, alice: UserRecord, chat: ConversationRecord) -> None:
    _, a = _exchange(storage, alice, chat, "Capital of France?", "Lyon.")
    fb = storage.feedback
    assert fb.get(alice.id, a) is None
    got = fb.set(alice.id, a, rating="good")
    assert got is not None and got.rating == "good" and got.edited_content is None
    got = fb.set(alice.id, a, edited_content="Paris.")
    assert got is not None and (got.rating, got.edited_content) == ("good", "Paris.")
    assert storage.messages.get(alice.id, a).content == "Lyon."  # the original stays
    thread = storage.messages.thread(alice.id, chat.id)
    assert thread[0].feedback is None
    assert thread[1].feedback is not None and thread[1].feedback.edited_content == "Paris."
    assert [m.content for m in storage.messages.preferred_path(alice.id, chat.id)] == [
        "Capital of France?", "Paris."]
    assert [m.content for m in storage.messages.path(alice.id, chat.id)][1] == "Lyon."
    got = fb.set(alice.id, a, rating="bad")
    assert got is not None and got.rating == "bad" and got.edited_content == "Paris."
    assert fb.set(alice.id, a, rating=None) is not None  # the edit is still there
    assert fb.set(alice.id, a, edited_content=None) is None  # nothing left: the row goes
    assert fb.get(alice.id, a) is None
    assert fb.set(alice.id, a, edited_content="Lyon.") is None  # the same text is no edit


def test_bad_feedback_is_refused_and_changes_nothing(
        storage: Storage, alice: UserRecord, chat: ConversationRecord) -> None:
    q, a = _exchange(storage, alice, chat, "Hi", "Hello")
    fb = storage.feedback
    fb.set(alice.id, a, rating="good")
    with pytest.raises(InvalidRequestError, match="rating must be"):
        fb.set(alice.id, a, rating="meh")
    with pytest.raises(InvalidRequestError, match="non-empty"):
        fb.set(alice.id, a, edited_content="   ")
    with pytest.raises(InvalidRequestError, match="finished assistant answer"):
        fb.set(alice.id, q, rating="good")
    streaming = storage.messages.add(alice.id, chat.id, parent_id=q, role="assistant",
                                     status="streaming")
    with pytest.raises(InvalidRequestError, match="finished assistant answer"):
        fb.set(alice.id, streaming.id, rating="good")
    with pytest.raises(NotFoundError):
        fb.set(alice.id, 987654, rating="good")
    got = fb.get(alice.id, a)
    assert got is not None and (got.rating, got.edited_content) == ("good", None)


def test_another_users_answer_is_missing_to_them(
        storage: Storage, alice: UserRecord, bob: UserRecord, chat: ConversationRecord) -> None:
    _, a = _exchange(storage, alice, chat, "Hi", "Hello")
    storage.feedback.set(alice.id, a, rating="good", edited_content="Hello there")
    with pytest.raises(NotFoundError):
        storage.feedback.set(bob.id, a, rating="bad")
    with pytest.raises(NotFoundError):
        storage.feedback.get(bob.id, a)
    assert storage.feedback.rated(bob.id) == []
    got = storage.feedback.get(alice.id, a)
    assert got is not None and got.rating == "good"


def test_rated_lists_good_and_edited_answers_never_bad_ones(
        storage: Storage, alice: UserRecord, chat: ConversationRecord) -> None:
    _, good = _exchange(storage, alice, chat, "1", "one")
    _, edited = _exchange(storage, alice, chat, "2", "too", parent=good)
    _, bad = _exchange(storage, alice, chat, "3", "tree", parent=edited)
    _, plain = _exchange(storage, alice, chat, "4", "four", parent=bad)
    fb = storage.feedback
    fb.set(alice.id, good, rating="good")
    fb.set(alice.id, edited, edited_content="two")
    fb.set(alice.id, bad, rating="bad", edited_content="three")
    assert plain
    ids = lambda **kw: [m.id for m, _ in fb.rated(alice.id, **kw)]  # noqa: E731
    assert ids() == [good, edited]
    assert ids(edited=False) == [good]
    assert ids(good=False) == [edited]


def test_feedback_goes_with_its_conversation_and_account(
        storage: Storage, alice: UserRecord, chat: ConversationRecord) -> None:
    _, a = _exchange(storage, alice, chat, "Hi", "Hello")
    storage.feedback.set(alice.id, a, rating="good")
    storage.conversations.delete(alice.id, chat.id)
    assert storage.feedback.rated(alice.id) == []
    other = storage.conversations.create(alice.id, "second")
    _, b = _exchange(storage, alice, other, "Hi", "Hello")
    storage.feedback.set(alice.id, b, rating="good")
    storage.users.delete(alice.id)
    from sqlalchemy import func, select

    from openwen.storage.feedback import MessageFeedback

    with storage.db.read() as s:
        assert s.scalar(select(func.count()).select_from(MessageFeedback)) == 0
