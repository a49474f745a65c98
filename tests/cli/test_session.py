"""The interactive chat session keeps history, honours /reset, and records answers."""

from __future__ import annotations

import io
from dataclasses import replace

from rich.console import Console

from openwen.chat.service import ChatService
from openwen.cli.session import ChatSession
from openwen.config import Settings


def make_session(settings: Settings) -> tuple[ChatSession, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=100)
    session = ChatSession(ChatService(settings), console, model="smollm2", max_tokens=12)
    return session, out


def test_history_grows_and_reset_clears_it(settings: Settings) -> None:
    session, out = make_session(settings)
    try:
        session.turn("My name is Ada.")
        session.turn("What is my name?")
        roles = [m.role for m in session.history]
        assert roles == ["user", "assistant", "user", "assistant"]
        assert session.history[0].content == "My name is Ada."
        assert session.history[1].content  # the streamed answer was recorded
        assert session.command("/reset") is True
        assert session.history == []
        assert session.command("/exit") is False
    finally:
        session._runner.run(session.service.aclose())
        session._runner.close()


def test_commands_change_the_session(settings: Settings) -> None:
    session, out = make_session(settings)
    try:
        session.command("/think off")
        assert session.thinking is False
        session.command("/system Be terse.")
        assert session.system == "Be terse."
        session.command("/model other")
        assert session.model == "other"
        session.command("/nonsense")
        assert "unknown command" in out.getvalue()
    finally:
        session._runner.close()


def test_turns_use_the_models_profile_like_the_web_app(settings: Settings) -> None:
    from openwen.chat.turn import ChatSettings
    from openwen.messages import Message
    from openwen.models.profiles import SMOLLM2_SYSTEM, profile_for

    session, _ = make_session(settings)
    try:
        chat = session.chat_settings()
        web = ChatSettings(max_tokens=12).with_profile(*profile_for("smollm2", settings))
        assert chat == replace(web, model="smollm2")  # one code path: the same settings
        assert chat.default_system == SMOLLM2_SYSTEM and chat.temperature == 0.0
        request = chat.request((Message("user", "Hi"),), system=session.system)
        assert request.messages[0].content == SMOLLM2_SYSTEM
        session.command("/system Be terse.")
        request = session.chat_settings().request((Message("user", "Hi"),),
                                                  system=session.system)
        assert request.messages[0].content == "Be terse."
    finally:
        session._runner.close()
