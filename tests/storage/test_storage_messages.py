"""Message trees (branching, switching) and streaming updates."""

from __future__ import annotations

import pytest

from openwen.errors import InvalidRequestError, NotFoundError
from openwen.messages import Message, ToolCall
from openwen.storage import ConversationRecord, Storage, UserRecord


@pytest.fixture
def chat(storage: Storage, alice: UserRecord) -> ConversationRecord:
    return storage.conversations.create(alice.id, "tree")


def contents(messages: list) -> list[str]:
    return [m.content for m in messages]


def test_linear_conversation_path(storage: Storage, alice: UserRecord, chat) -> None:
    assert storage.messages.path(alice.id, chat.id) == []
    q = storage.messages.add(alice.id, chat.id, parent_id=None, role="user", content="Hi")
    a = storage.messages.add(alice.id, chat.id, parent_id=q.id, role="assistant", content="Hello")
    assert storage.conversations.get(alice.id, chat.id).current_leaf_id == a.id
    path = storage.messages.path(alice.id, chat.id)
    assert contents(path) == ["Hi", "Hello"]
    assert path[1].parent_id == path[0].id
    assert storage.messages.path(alice.id, chat.id, leaf_id=q.id) == [path[0]]


def test_edit_creates_a_sibling_branch_and_switching_restores_it(
    storage: Storage, alice: UserRecord, chat
) -> None:
    add = storage.messages.add
    q1 = add(alice.id, chat.id, parent_id=None, role="user", content="What is 2+2?")
    a1 = add(alice.id, chat.id, parent_id=q1.id, role="assistant", content="4")
    q2 = add(alice.id, chat.id, parent_id=a1.id, role="user", content="And 3+3?")
    a2 = add(alice.id, chat.id, parent_id=q2.id, role="assistant", content="6")
    # Edit the second question: a sibling of q2 with its own answer.
    q2b = add(alice.id, chat.id, parent_id=a1.id, role="user", content="And 5+5?")
    a2b = add(alice.id, chat.id, parent_id=q2b.id, role="assistant", content="10")
    assert contents(storage.messages.path(alice.id, chat.id)) == [
        "What is 2+2?",
        "4",
        "And 5+5?",
        "10",
    ]
    assert [m.id for m in storage.messages.siblings(alice.id, q2.id)] == [q2.id, q2b.id]
    assert [m.id for m in storage.messages.children(alice.id, a1.id)] == [q2.id, q2b.id]
    # Switch back to the first version: the leaf goes down to that branch's newest message.
    leaf = storage.messages.set_current_leaf(alice.id, q2.id)
    assert leaf.id == a2.id
    assert storage.conversations.get(alice.id, chat.id).current_leaf_id == a2.id
    assert contents(storage.messages.path(alice.id, chat.id))[-2:] == ["And 3+3?", "6"]
    # Without descending the leaf is the message itself.
    assert storage.messages.set_current_leaf(alice.id, q2b.id, descend=False).id == q2b.id
    assert storage.messages.path(alice.id, chat.id)[-1].id == q2b.id
    assert storage.messages.set_current_leaf(alice.id, q2b.id).id == a2b.id
    assert len(storage.messages.tree(alice.id, chat.id)) == 6


def test_regenerate_picks_the_newest_answer_when_switching(
    storage: Storage, alice: UserRecord, chat
) -> None:
    q = storage.messages.add(alice.id, chat.id, parent_id=None, role="user", content="Q")
    answers = [
        storage.messages.add(alice.id, chat.id, parent_id=q.id, role="assistant", content=t)
        for t in ("one", "two", "three")
    ]
    storage.messages.set_current_leaf(alice.id, answers[0].id)
    assert storage.messages.set_current_leaf(alice.id, q.id).id == answers[-1].id


def test_thread_reports_siblings_along_the_path(storage: Storage, alice: UserRecord, chat) -> None:
    add = storage.messages.add
    r1 = add(alice.id, chat.id, parent_id=None, role="user", content="root one")
    r2 = add(alice.id, chat.id, parent_id=None, role="user", content="root two")
    a = add(alice.id, chat.id, parent_id=r2.id, role="assistant", content="answer")
    thread = storage.messages.thread(alice.id, chat.id)
    assert [e.message.id for e in thread] == [r2.id, a.id]
    assert thread[0].sibling_ids == (r1.id, r2.id) and thread[0].branch_index == 1
    assert thread[1].sibling_ids == (a.id,) and thread[1].branch_index == 0
    assert [m.id for m in storage.messages.siblings(alice.id, r1.id)] == [r1.id, r2.id]


def test_add_without_becoming_current(storage: Storage, alice: UserRecord, chat) -> None:
    q = storage.messages.add(alice.id, chat.id, parent_id=None, role="user", content="Q")
    storage.messages.add(
        alice.id, chat.id, parent_id=q.id, role="assistant", content="draft", make_current=False
    )
    assert storage.conversations.get(alice.id, chat.id).current_leaf_id == q.id


def test_parent_must_be_in_the_same_conversation(storage: Storage, alice: UserRecord, chat) -> None:
    other = storage.conversations.create(alice.id, "other")
    elsewhere = storage.messages.add(alice.id, other.id, parent_id=None, role="user", content="x")
    with pytest.raises(NotFoundError):
        storage.messages.add(alice.id, chat.id, parent_id=elsewhere.id, role="user", content="y")
    with pytest.raises(NotFoundError):
        storage.messages.path(alice.id, chat.id, leaf_id=elsewhere.id)
    assert storage.messages.tree(alice.id, chat.id) == []


@pytest.mark.parametrize("bad", [{"role": "robot"}, {"status": "done"}, {"content": None}])
def test_invalid_messages_are_rejected(storage: Storage, alice: UserRecord, chat, bad) -> None:
    fields = {"role": "user", "content": "x", **bad}
    with pytest.raises(InvalidRequestError):
        storage.messages.add(alice.id, chat.id, parent_id=None, **fields)
    assert storage.messages.tree(alice.id, chat.id) == []


def test_streaming_append_then_complete(storage: Storage, alice: UserRecord, chat) -> None:
    q = storage.messages.add(alice.id, chat.id, parent_id=None, role="user", content="Tell me")
    a = storage.messages.add(
        alice.id, chat.id, parent_id=q.id, role="assistant", status="streaming",
        metadata={"model": "qwen3-0.6b", "sampling": {"temperature": 0.7}},
    )  # fmt: skip
    assert a.status == "streaming" and a.content == ""
    storage.messages.append(alice.id, a.id, reasoning="Let me think. ")
    storage.messages.append(alice.id, a.id, reasoning="Done.")
    for piece in ["Once ", "upon ", "a time ", "— 从前"]:
        storage.messages.append(alice.id, a.id, content=piece)
    streaming = storage.messages.get(alice.id, a.id)
    assert streaming.content == "Once upon a time — 从前"
    assert streaming.reasoning == "Let me think. Done."
    done = storage.messages.set_status(
        alice.id,
        a.id,
        "complete",
        metadata={
            "usage": {"prompt_tokens": 12, "completion_tokens": 7},
            "timings": {"ttft_ms": 5},
        },
    )
    assert done.status == "complete"
    assert done.metadata == {
        "model": "qwen3-0.6b",
        "sampling": {"temperature": 0.7},
        "usage": {"prompt_tokens": 12, "completion_tokens": 7},
        "timings": {"ttft_ms": 5},
    }
    with pytest.raises(InvalidRequestError, match="not streaming"):
        storage.messages.append(alice.id, a.id, content="late")
    assert storage.messages.get(alice.id, a.id).content == "Once upon a time — 从前"


def test_update_sets_fields_and_statuses(storage: Storage, alice: UserRecord, chat) -> None:
    a = storage.messages.add(
        alice.id, chat.id, parent_id=None, role="assistant", status="streaming"
    )
    call = ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')
    updated = storage.messages.update(
        alice.id, a.id, content="checking", tool_calls=[call], metadata={"model": "m"}
    )
    assert updated.tool_calls == (call,) and updated.status == "streaming"
    failed = storage.messages.set_status(alice.id, a.id, "error", metadata={"error": "boom"})
    assert failed.status == "error" and failed.metadata == {"model": "m", "error": "boom"}
    cleared = storage.messages.update(alice.id, a.id, metadata={"error": None})
    assert cleared.metadata == {"model": "m"}
    assert storage.messages.set_status(alice.id, a.id, "incomplete").status == "incomplete"
    with pytest.raises(InvalidRequestError):
        storage.messages.set_status(alice.id, a.id, "finished")
    assert storage.messages.get(alice.id, a.id).status == "incomplete"
    tool = storage.messages.add(
        alice.id, chat.id, parent_id=a.id, role="tool", content="18°C", tool_call_id="call_1"
    )
    assert tool.to_message() == Message(role="tool", content="18°C", tool_call_id="call_1")
    assert storage.messages.get(alice.id, a.id).to_message().tool_calls == (call,)


def test_recover_interrupted_streams(storage: Storage, alice: UserRecord, chat) -> None:
    a = storage.messages.add(
        alice.id, chat.id, parent_id=None, role="assistant", status="streaming", content="half"
    )
    b = storage.messages.add(alice.id, chat.id, parent_id=None, role="user", content="done")
    assert storage.messages.recover_interrupted() == 1
    assert storage.messages.get(alice.id, a.id).status == "incomplete"
    assert storage.messages.get(alice.id, b.id).status == "complete"


def test_adding_messages_bumps_the_conversation(storage: Storage, alice: UserRecord, chat) -> None:
    storage.messages.add(alice.id, chat.id, parent_id=None, role="user", content="x")
    assert storage.conversations.get(alice.id, chat.id).updated_at > chat.updated_at


def test_nul_characters_are_stored_on_every_backend(
    storage: Storage, alice: UserRecord, chat
) -> None:
    """PostgreSQL cannot store NUL in text: it becomes U+FFFD everywhere, alike."""
    call = ToolCall(id="c\x00", name="f", arguments='{"a": "\x00"}')
    m = storage.messages.add(
        alice.id, chat.id, parent_id=None, role="assistant", content="a\x00b",
        reasoning="\x00", tool_calls=[call], status="streaming",
    )  # fmt: skip
    storage.messages.append(alice.id, m.id, content="\x00c")
    stored = storage.messages.get(alice.id, m.id)
    assert stored.content == "a\ufffdb\ufffdc" and stored.reasoning == "\ufffd"
    assert stored.tool_calls[0].id == "c\ufffd"
    assert storage.conversations.rename(alice.id, chat.id, "t\x00").title == "t\ufffd"
    with pytest.raises(InvalidRequestError):
        storage.messages.set_status(alice.id, m.id, "complete", metadata={"x": "\x00"})
    with pytest.raises(InvalidRequestError):
        storage.settings.set(alice.id, "k", "\x00")
    assert storage.messages.get(alice.id, m.id).status == "streaming"
