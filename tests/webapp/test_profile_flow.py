"""The bundled model's built-in profile in the web app's chat flow, on the real model: its
system prompt and example exchanges go first, and the calculator finishes the equation the
model writes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from openwen.chat.conversations import ConversationChat
from openwen.chat.service import ChatService
from openwen.messages import TextDelta
from openwen.models.profiles import SMOLLM2_EXAMPLES, SMOLLM2_SYSTEM, profile_for
from openwen.storage import Storage


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    store = Storage.open(f"sqlite:///{tmp_path / 'chat.db'}")
    yield store
    store.close()


async def ask(storage: Storage, service: ChatService, question: str,
              user_layer: dict[str, object] | None = None) -> tuple[str, str]:
    user = storage.users.create(f"u{len(storage.users.list_all())}", "hash")
    chat = ConversationChat(storage, service, save_interval=0.1, profiles=lambda _, model:
                            profile_for(model, service.settings, user=user_layer))
    conversation = storage.conversations.create(user.id, settings={"max_tokens": 48})
    turn = await chat.send(user.id, conversation.id, question)
    streamed = "".join([e.text async for e in turn.events() if isinstance(e, TextDelta)])
    await chat.aclose()
    stored = storage.messages.get(user.id, turn.message.id)
    assert stored.status == "complete" and stored.content == streamed
    if turn.settings.arithmetic and "=" in streamed:
        calculated = stored.metadata["calculated"]  # the stored answer says who computed it
        assert streamed.rstrip().endswith(calculated["result"])
        assert calculated["equation"].endswith("=")
    return streamed, str(turn.settings.default_system)


@pytest.mark.slow
async def test_the_calculator_finishes_the_models_equation(
        storage: Storage, real_service: ChatService) -> None:
    # under the profile without its calculator this model wrote "100 - 37 = 33"
    text, system = await ask(storage, real_service, "What is 100 minus 37?")
    assert system == SMOLLM2_SYSTEM
    assert text.strip().endswith("= 63"), text


@pytest.mark.slow
async def test_a_fact_is_answered_in_the_examples_short_form(
        storage: Storage, real_service: ChatService) -> None:
    text, _ = await ask(storage, real_service, "What is the capital of France?")
    assert "Paris" in text and len(text) < 80, text
    assert all(answer not in text for _, answer in SMOLLM2_EXAMPLES)  # not an example copied


@pytest.mark.slow
async def test_a_user_can_switch_the_examples_and_calculator_off(
        storage: Storage, real_service: ChatService) -> None:
    layer = {"smollm2": {"examples": [], "arithmetic": False}}
    profile, _ = profile_for("smollm2", real_service.settings, user=layer)
    assert profile.examples == () and profile.arithmetic is False
    text, _ = await ask(storage, real_service, "What is the capital of France?", layer)
    assert text.strip()
