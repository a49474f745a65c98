"""Two instances over one store (two ConversationChat objects on one SQLite file, each with its
own instance id): a stop pressed on one stops the answer the other writes; a sweep by one never
touches the other's live answers; a page on one follows the other's answer."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from webapp_helpers import ScriptedEngine, ScriptedRegistry

from openwen.chat.conversations import ConversationChat, TurnEnded
from openwen.chat.service import ChatService
from openwen.config import Settings
from openwen.storage import Storage

WAIT = 30.0  # a safety net


def instance(settings: Settings, url: str, instance_id: str, engine: ScriptedEngine
             ) -> ConversationChat:
    storage = Storage.open(url)
    storage.instance_id = instance_id
    storage.instances.register(instance_id)
    service = ChatService(settings, registry=ScriptedRegistry(engine))  # type: ignore[arg-type]
    return ConversationChat(storage, service, save_interval=0.05)


async def test_stop_from_another_instance_and_sweeps_leave_live_answers(
    settings: Settings, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    engine = ScriptedEngine(script=["Hello", " there", "WAIT", " never"])
    writer = instance(settings, url, "writer", engine)
    other = instance(settings, url, "other", ScriptedEngine())
    user = writer.storage.users.create("alice", None)
    conversation = writer.storage.conversations.create(user.id)
    turn = await writer.send(user.id, conversation.id, "Hi")
    answer_id = turn.first_message.id

    async def saved() -> str:
        while True:
            record = await asyncio.to_thread(other.storage.messages.get, user.id, answer_id)
            if record.content == "Hello there":
                return record.status
            await asyncio.sleep(0.02)

    # the other instance follows the answer as it is written
    assert await asyncio.wait_for(saved(), WAIT) == "streaming"
    # a sweep (another instance starting, or the periodic one) leaves a live answer alone
    assert await asyncio.to_thread(other.recover_interrupted, 20.0) == 0
    assert other.storage.messages.get(user.id, answer_id).status == "streaming"
    # stop pressed on the other instance
    assert await asyncio.wait_for(other.stop(user.id, answer_id), WAIT) is True
    ended = await asyncio.wait_for(turn.wait(), WAIT)
    assert isinstance(ended, TurnEnded) and ended.status == "incomplete"
    stored = other.storage.messages.get(user.id, answer_id)
    assert (stored.status, stored.content) == ("incomplete", "Hello there")
    # stopping what is no longer generating is a no
    assert await other.stop(user.id, answer_id) is False
    for chat in (writer, other):
        await chat.aclose()
        chat.storage.close()


async def test_a_tool_confirmation_answered_on_another_instance(
    settings: Settings, tmp_path: Path
) -> None:
    from openwen.chat.turn_tools import ToolConfirmAnswered, ToolConfirmRequest
    from openwen.errors import NotFoundError
    from openwen.tools.base import FunctionTool
    from openwen.tools.registry import ToolRegistry

    written: list[str] = []

    def save_note(text: str) -> str:
        """Save a note."""
        written.append(text)
        return "saved"

    def tools(user_id: int) -> ToolRegistry:
        return ToolRegistry([FunctionTool(save_note, side_effects=True)])

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    engine = ScriptedEngine(rounds=[[("call", "save_note", {"text": "milk"})], ["Saved."]])
    writer = instance(settings, url, "writer", engine)
    writer.tools = tools
    other = instance(settings, url, "other", ScriptedEngine())
    alice = writer.storage.users.create("alice", None)
    bob = writer.storage.users.create("bob", None)
    conversation = writer.storage.conversations.create(alice.id)
    turn = await writer.send(alice.id, conversation.id, "Note milk")

    async def run() -> list[object]:
        seen: list[object] = []
        async for event in turn.events():
            seen.append(event)
            if isinstance(event, ToolConfirmRequest):
                # someone else's question is not found, on any instance
                with pytest.raises(NotFoundError):
                    await other.answer_confirmation(bob.id, event.id, True)
                # the user's answer reaches the writer from the other instance
                assert await other.answer_confirmation(alice.id, event.id, True) > 0
        return seen

    seen = await asyncio.wait_for(run(), WAIT)
    answered = [e for e in seen if isinstance(e, ToolConfirmAnswered)]
    assert [(e.approved, e.by) for e in answered] == [(True, "user")]
    assert written == ["milk"]
    # the question is gone once answered: answering again finds nothing
    asked = next(e for e in seen if isinstance(e, ToolConfirmRequest))
    with pytest.raises(NotFoundError):
        await other.answer_confirmation(alice.id, asked.id, False)
