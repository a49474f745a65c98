"""Long-term memory: explicit "remember that", the remember tool, recall into the context."""

from __future__ import annotations

import inspect

import pytest

from openwen.errors import InvalidRequestError, NotFoundError
from openwen.knowledge import KnowledgeBase, detect_remember
from openwen.knowledge.extract import parse_facts
from openwen.storage import UserRecord


@pytest.mark.parametrize(("message", "fact"), [
    ("Remember that my sister is called Ana.", "My sister is called Ana."),
    ("please remember: I prefer metric units", "I prefer metric units."),
    ("Can you remember that our wifi password is on the fridge?",
     "Our wifi password is on the fridge."),
    ("Don't forget that Mia is allergic to peanuts!", "Mia is allergic to peanuts."),
    ("keep in mind I work night shifts", "I work night shifts."),
    ("Do you remember what I told you?", None),
    ("remember when we went to Rome?", None),
    ("I can't remember the name of that film", None),
    ("What should I remember for the exam?", None),
    ("Remember to buy milk", None),
    ("", None),
])
def test_detect_remember(message: str, fact: str | None) -> None:
    assert detect_remember(message) == fact


def test_memories_crud_and_recall(kb: KnowledgeBase, alice: UserRecord) -> None:
    sister = kb.memories.add(alice.id, "My sister is called Ana.")
    units = kb.memories.add(alice.id, "I prefer metric units.")
    kb.memories.add(alice.id, "My favourite colour is green.")
    assert kb.memories.add(alice.id, "my sister is called ana.").id == sister.id  # no duplicate
    assert [m.text for m in kb.memories.recall(alice.id, "What is my sister's name?")][0] == \
        sister.text
    assert kb.memories.recall(alice.id, "how tall is Mount Everest?") == []  # nothing related
    recalled = kb.memories.recall(alice.id, "which units should the recipe use?")
    assert [m.id for m in recalled][:1] == [units.id]
    edited = kb.memories.edit(alice.id, units.id, "I prefer imperial units.")
    assert edited.text == "I prefer imperial units." and edited.updated_at >= units.updated_at
    kb.memories.delete(alice.id, sister.id)
    assert sister.id not in [m.id for m in kb.memories.recall(alice.id, "sister name")]
    assert [m.text for m in kb.memories.all(alice.id)] == [
        "I prefer imperial units.", "My favourite colour is green."]
    with pytest.raises(InvalidRequestError):
        kb.memories.add(alice.id, "   ")
    with pytest.raises(InvalidRequestError, match="at most 1000"):
        kb.memories.add(alice.id, "x" * 1001)


def test_memories_are_private(kb: KnowledgeBase, alice: UserRecord, bob: UserRecord) -> None:
    secret = kb.memories.add(alice.id, "My bank is Northwind Savings.")
    assert kb.memories.recall(bob.id, "which bank do I use?") == []
    assert kb.memories.all(bob.id) == []
    for call in (lambda: kb.memories.get(bob.id, secret.id),
                 lambda: kb.memories.edit(bob.id, secret.id, "hacked"),
                 lambda: kb.memories.delete(bob.id, secret.id)):
        with pytest.raises(NotFoundError, match=f"memory {secret.id} not found"):
            call()
    assert kb.memories.get(alice.id, secret.id).text == secret.text


def test_context_block_and_switching_memory_off(kb: KnowledgeBase, alice: UserRecord) -> None:
    assert kb.build_context(alice.id, "hello") == ""
    stored = kb.remember_from_message(alice.id, "Remember that my dog is called Biscuit")
    assert stored is not None and stored.source == "chat"
    assert kb.remember_from_message(alice.id, "what is the weather?") is None
    block = kb.build_context(alice.id, "what should I feed my dog?")
    assert "What you remember about the user" in block
    assert "- My dog is called Biscuit." in block
    assert kb.set_memory_settings(alice.id, enabled=False) == {"enabled": False,
                                                               "auto_extract": False}
    assert kb.build_context(alice.id, "what should I feed my dog?") == ""
    assert kb.remember_from_message(alice.id, "Remember that I live in Leeds") is None


async def test_remember_tool(kb: KnowledgeBase, alice: UserRecord) -> None:
    remember = kb.remember_tool(alice.id)
    assert remember.__name__ == "remember"
    assert "fact" in inspect.signature(remember).parameters
    assert "lasting fact" in (remember.__doc__ or "")
    reply = await remember("The user's daughter Mia is allergic to peanuts.")
    assert reply == "Saved to memory: The user's daughter Mia is allergic to peanuts."
    assert [(m.text, m.source) for m in kb.memories.all(alice.id)] == [
        ("The user's daughter Mia is allergic to peanuts.", "tool")]
    context = await kb.abuild_context(alice.id, "Can Mia eat satay sauce?")
    assert "allergic to peanuts" in context


def test_parse_extracted_facts() -> None:
    reply = "- The user lives in Leeds.\n* The user has a dog named Biscuit.\nNONE\n- ok\n" \
            "1. The user works as a nurse."
    assert parse_facts(reply) == ["The user lives in Leeds.", "The user has a dog named "
                                  "Biscuit.", "The user works as a nurse."]
    assert parse_facts("NONE") == []


async def test_auto_extraction_is_off_by_default(kb: KnowledgeBase, alice: UserRecord) -> None:
    class NoService:  # would fail if called
        def stream(self, request):
            raise AssertionError("the model must not be asked")

    assert kb.memory_settings(alice.id)["auto_extract"] is False
    assert await kb.extract_memories(NoService(), alice.id, "I moved to Leeds") == []  # type: ignore[arg-type]
