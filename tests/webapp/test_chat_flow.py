"""The persistent chat flow (chat/conversations.py): stored before generation, saved while
streaming, ended complete / incomplete / error, branches, prompt building, recovery."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from webapp_helpers import ScriptedEngine

from openwen.chat.conversations import ConversationChat, TurnEnded, TurnStarted, trim
from openwen.chat.service import ChatService
from openwen.errors import ContextLengthError, EngineError, InvalidRequestError, NotFoundError
from openwen.messages import Message, ReasoningDelta, TextDelta
from openwen.storage import Storage, UserRecord

WAIT_LIMIT = 60.0  # a safety net for a broken implementation, not a timing assertion


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    store = Storage.open(f"sqlite:///{tmp_path / 'chat.db'}")
    yield store
    store.close()


@pytest.fixture
def user(storage: Storage) -> UserRecord:
    return storage.users.create("alice", "hash")


@pytest.fixture
async def chat(storage: Storage, scripted_service: ChatService) -> ConversationChat:
    chat = ConversationChat(storage, scripted_service, save_interval=0.02)
    yield chat
    await chat.aclose()


async def until(condition: Callable[[], Any]) -> Any:
    """Wait until ``condition()`` is truthy (polling the store)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_LIMIT
    while loop.time() < deadline:
        value = await asyncio.to_thread(condition)
        if value:
            return value
        await asyncio.sleep(0.01)
    raise AssertionError("condition never became true")


async def collect(turn: Any) -> list[Any]:
    return [event async for event in turn.events()]


async def test_question_is_stored_before_generation_and_answer_completes(
    chat: ConversationChat, storage: Storage, user: UserRecord, engine: ScriptedEngine
) -> None:
    engine.script = ["WAIT", "Hi", " there"]
    conversation = storage.conversations.create(user.id, settings={"temperature": 0.2})
    turn = await chat.send(user.id, conversation.id, "Hello?")
    stored = storage.messages.path(user.id, conversation.id)
    assert [(m.role, m.content, m.status) for m in stored] == [
        ("user", "Hello?", "complete"),
        ("assistant", "", "streaming"),
    ]
    engine.release()
    found = await collect(turn)
    assert isinstance(found[0], TurnStarted) and found[0].user_message.content == "Hello?"
    assert [e.text for e in found if isinstance(e, TextDelta)] == ["Hi", " there"]
    end = found[-1]
    assert isinstance(end, TurnEnded) and end.status == "complete"
    answer = storage.messages.get(user.id, turn.message.id)
    assert answer.status == "complete" and answer.content == "Hi there"
    assert answer.metadata["model"] == "scripted"
    assert answer.metadata["sampling"] == {"temperature": 0.2}
    assert answer.metadata["usage"]["completion_tokens"] == 2
    assert answer.metadata["finish_reason"] == "stop"
    assert "timings" in answer.metadata
    assert storage.conversations.get(user.id, conversation.id).title == "Hello?"


async def test_answer_is_saved_while_it_streams(
    chat: ConversationChat, storage: Storage, user: UserRecord, engine: ScriptedEngine
) -> None:
    engine.script = ["Once", " upon", ("reasoning", "hmm"), "WAIT", " a time"]
    conversation = storage.conversations.create(user.id)
    turn = await chat.send(user.id, conversation.id, "Tell a story")
    saved = await until(
        lambda: (
            (m := storage.messages.get(user.id, turn.message.id)).content == "Once upon"
            and m.reasoning == "hmm"
            and m
        )
    )
    assert saved.status == "streaming"
    engine.release()
    await turn.wait()
    final = storage.messages.get(user.id, turn.message.id)
    assert (final.content, final.reasoning, final.status) == ("Once upon a time", "hmm", "complete")


async def test_stop_keeps_the_partial_answer_marked_incomplete(
    chat: ConversationChat, storage: Storage, user: UserRecord, engine: ScriptedEngine
) -> None:
    engine.script = ["Partial", " answer", "WAIT", " never"]
    conversation = storage.conversations.create(user.id)
    turn = await chat.send(user.id, conversation.id, "Go")
    seen = []
    async for event in turn.events():
        if isinstance(event, TextDelta):
            seen.append(event.text)
            if len(seen) == 2:
                assert await chat.stop(user.id, turn.message.id) is True
        if isinstance(event, TurnEnded):
            assert event.status == "incomplete" and event.finish_reason == "cancelled"
    answer = storage.messages.get(user.id, turn.message.id)
    assert (answer.content, answer.status) == ("Partial answer", "incomplete")
    assert answer.metadata["finish_reason"] == "cancelled"
    assert await chat.stop(user.id, turn.message.id) is False  # nothing running any more


async def test_a_listener_leaving_stops_generation(
    chat: ConversationChat, storage: Storage, user: UserRecord, engine: ScriptedEngine
) -> None:
    engine.script = ["First", "WAIT", " second"]
    conversation = storage.conversations.create(user.id)
    turn = await chat.send(user.id, conversation.id, "Go")
    events = turn.events()
    async for event in events:
        if isinstance(event, TextDelta):
            break
    await events.aclose()  # what a client disconnect does
    ended = await turn.wait()
    assert ended.status == "incomplete"
    assert storage.messages.get(user.id, turn.message.id).content == "First"


async def test_engine_failure_marks_the_answer_error(
    chat: ConversationChat, storage: Storage, user: UserRecord, engine: ScriptedEngine
) -> None:
    engine.script = ["Half", EngineError("upstream went away")]
    conversation = storage.conversations.create(user.id)
    turn = await chat.send(user.id, conversation.id, "Go")
    end = (await collect(turn))[-1]
    assert end.status == "error" and end.error.message == "upstream went away"
    answer = storage.messages.get(user.id, turn.message.id)
    assert answer.status == "error" and answer.content == "Half"
    assert answer.metadata["error"]["message"] == "upstream went away"


async def test_regenerate_and_edit_make_branches_built_from_their_own_path(
    chat: ConversationChat, storage: Storage, user: UserRecord, engine: ScriptedEngine
) -> None:
    conversation = storage.conversations.create(
        user.id,
        system_prompt="Be brief.",
        settings={"model": "scripted", "top_p": 0.9, "max_tokens": 5, "thinking": False},
    )
    first = await chat.send(user.id, conversation.id, "One")
    await collect(first)
    second = await chat.send(user.id, conversation.id, "Two")
    await collect(second)
    request = engine.requests[-1]
    assert [(m.role, m.content) for m in request.messages] == [
        ("system", "Be brief."),
        ("user", "One"),
        ("assistant", "Hello there."),
        ("user", "Two"),
    ]
    assert (request.model, request.max_tokens, request.thinking) == ("scripted", 5, False)
    assert request.sampling.top_p == 0.9

    again = await chat.regenerate(user.id, second.message.id)
    await collect(again)
    siblings = storage.messages.siblings(user.id, second.message.id)
    assert [m.id for m in siblings] == [second.message.id, again.message.id]
    assert engine.requests[-1].messages[-1].content == "Two"

    edited = await chat.edit(user.id, first.user_message.id, "One, edited")
    await collect(edited)
    assert [(m.role, m.content) for m in engine.requests[-1].messages] == [
        ("system", "Be brief."),
        ("user", "One, edited"),
    ]
    path = storage.messages.path(user.id, conversation.id)
    assert [m.content for m in path] == ["One, edited", "Hello there."]
    # switching back to the first version shows its newest continuation
    storage.messages.set_current_leaf(user.id, first.user_message.id)
    path = storage.messages.path(user.id, conversation.id)
    assert path[-1].id == again.message.id


async def test_a_conversation_too_long_for_the_context_is_trimmed(
    chat: ConversationChat, storage: Storage, user: UserRecord, engine: ScriptedEngine
) -> None:
    conversation = storage.conversations.create(user.id)
    for text in ("a", "b", "c"):
        await collect(await chat.send(user.id, conversation.id, text))
    engine.max_messages = 3
    turn = await chat.send(user.id, conversation.id, "d")
    end = (await collect(turn))[-1]
    assert end.status == "complete"
    assert [m.content for m in engine.requests[-1].messages][-1] == "d"
    assert len(engine.requests[-1].messages) <= 3
    assert storage.messages.get(user.id, turn.message.id).metadata["trimmed_messages"] >= 4


def test_trim_keeps_the_last_question() -> None:
    history = [Message(role=r, content=str(i)) for i, r in enumerate(["user", "assistant"] * 3)]
    history.append(Message(role="user", content="last"))
    shorter = trim(history, ContextLengthError(4000, 2000))
    assert shorter is not None and shorter[-1].content == "last" and shorter[0].role == "user"
    assert len(shorter) < len(history)
    assert trim([Message(role="user", content="x")], ContextLengthError(4000, 2000)) is None


async def test_bad_input_stores_nothing_and_busy_conversations_refuse(
    chat: ConversationChat, storage: Storage, user: UserRecord, engine: ScriptedEngine
) -> None:
    conversation = storage.conversations.create(user.id)
    with pytest.raises(InvalidRequestError):
        await chat.send(user.id, conversation.id, "   ")
    assert storage.messages.tree(user.id, conversation.id) == []
    engine.script = ["WAIT", "x"]
    turn = await chat.send(user.id, conversation.id, "Go")
    with pytest.raises(InvalidRequestError) as busy:
        await chat.send(user.id, conversation.id, "Again")
    assert busy.value.code == "conversation_busy"
    engine.release()
    await turn.wait()


async def test_other_users_cannot_reach_a_conversation(
    chat: ConversationChat, storage: Storage, user: UserRecord, engine: ScriptedEngine
) -> None:
    other = storage.users.create("mallory", "hash")
    conversation = storage.conversations.create(user.id)
    engine.script = ["WAIT", "x"]
    turn = await chat.send(user.id, conversation.id, "Mine")
    with pytest.raises(NotFoundError):
        await chat.send(other.id, conversation.id, "Theirs")
    with pytest.raises(NotFoundError):
        await chat.stop(other.id, turn.message.id)
    with pytest.raises(NotFoundError):
        await chat.regenerate(other.id, turn.message.id)
    with pytest.raises(NotFoundError):
        await chat.edit(other.id, turn.user_message.id, "changed")
    assert turn.running
    engine.release()
    assert (await turn.wait()).status == "complete"


async def test_deleting_the_conversation_mid_answer_ends_it(
    chat: ConversationChat, storage: Storage, user: UserRecord, engine: ScriptedEngine
) -> None:
    engine.script = ["x", "WAIT", "y"]
    conversation = storage.conversations.create(user.id)
    turn = await chat.send(user.id, conversation.id, "Go")
    await until(lambda: storage.messages.get(user.id, turn.message.id).content == "x")
    storage.conversations.delete(user.id, conversation.id)
    engine.release()
    ended = await turn.wait()  # its last save finds it gone
    assert ended.message is None
    with pytest.raises(NotFoundError):
        storage.messages.get(user.id, turn.message.id)


def test_answers_left_streaming_are_recovered_as_incomplete(
    storage: Storage, user: UserRecord, scripted_service: ChatService
) -> None:
    conversation = storage.conversations.create(user.id)
    question = storage.messages.add(
        user.id, conversation.id, parent_id=None, role="user", content="Q"
    )
    storage.instance_id = "an-instance-that-is-gone"  # it has no heartbeat row
    answer = storage.messages.add(
        user.id,
        conversation.id,
        parent_id=question.id,
        role="assistant",
        content="partial",
        status="streaming",
    )
    chat = ConversationChat(storage, scripted_service)
    assert chat.recover_interrupted() == 1
    recovered = storage.messages.get(user.id, answer.id)
    assert (recovered.status, recovered.content) == ("incomplete", "partial")


# -- the real bundled model ----------------------------------------------------------------------


@pytest.mark.slow
async def test_real_model_answer_is_stored_complete(
    storage: Storage, user: UserRecord, real_service: ChatService
) -> None:
    chat = ConversationChat(storage, real_service, save_interval=0.1)
    conversation = storage.conversations.create(
        user.id, settings={"max_tokens": 8, "temperature": 0.0}
    )
    turn = await chat.send(user.id, conversation.id, "What is the capital of France?")
    found = await collect(turn)
    await chat.aclose()
    text = "".join(e.text for e in found if isinstance(e, TextDelta))
    answer = storage.messages.get(user.id, turn.message.id)
    assert answer.status == "complete" and answer.content == text and text.strip()
    assert answer.metadata["model"] == "smollm2"
    assert 1 <= answer.metadata["usage"]["completion_tokens"] <= 8
    assert not any(isinstance(e, ReasoningDelta) for e in found)


@pytest.mark.slow
async def test_real_model_stop_keeps_partial_answer(
    storage: Storage, user: UserRecord, real_service: ChatService
) -> None:
    chat = ConversationChat(storage, real_service, save_interval=0.1)
    conversation = storage.conversations.create(user.id, settings={"max_tokens": 400})
    turn = await chat.send(user.id, conversation.id, "Count from 1 to 300, one per line.")
    streamed = ""
    async for event in turn.events():
        if isinstance(event, TextDelta):
            streamed += event.text
            if len(streamed) > 5:
                turn.stop()
    await chat.aclose()
    answer = storage.messages.get(user.id, turn.message.id)
    assert answer.status == "incomplete"
    assert answer.content and streamed.startswith(answer.content)
