"""Answers for the terminal: the answer path, with openwen's shared tools when asked, under the
model's profile applied exactly as the web app applies it (:func:`profile_for`, then
:meth:`ChatSettings.with_profile`, then :meth:`ChatSettings.request`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace

from openwen.chat.answer import answer
from openwen.chat.service import ChatService
from openwen.chat.turn import ChatSettings
from openwen.config import Settings
from openwen.messages import AgentEvent
from openwen.models.profiles import profile_for
from openwen.requests import ChatRequest


def with_profile(settings: Settings, chat: ChatSettings) -> ChatSettings:
    """``chat`` (what the command line set) over its model's profile: built-in, or a derivative
    made with ``openwen create`` on its base's (blocking: reads the model store)."""
    model = chat.model or settings.model
    profile, capabilities = profile_for(model, settings)
    return replace(chat, model=model).with_profile(profile, capabilities)


async def stream_answer(service: ChatService, request: ChatRequest, *, tools: bool,
                        decide: bool = False, arithmetic: bool = False
                        ) -> AsyncIterator[AgentEvent]:
    """Events of one answer. With ``tools`` the agent may call openwen's tools (the local
    user's, MCP servers started for this answer; side-effecting ones ask on the terminal first);
    otherwise the model answers directly. ``decide``: the model first chooses between answering
    and each tool (for models whose template cannot render tools, as in the web app);
    ``arithmetic``: the calculator finishes equations the answer writes."""
    if not tools:
        async with contextlib.aclosing(answer(service, request,  # type: ignore[type-var]
                                              arithmetic=arithmetic)) as events:  # type: ignore[type-var]
            async for event in events:
                yield event
        return
    from openwen.cli.tools_cmd import terminal_confirm
    from openwen.tools.shared import SharedTools

    shared = SharedTools(service.settings)
    try:
        await shared.start()
        registry = shared.registry("local")
        async with contextlib.aclosing(answer(service, request, tools=registry,  # type: ignore[type-var]
                                              confirm=terminal_confirm(),
                                              decide=decide,
                                              arithmetic=arithmetic)) as events:
            async for event in events:
                yield event
    finally:
        await shared.aclose()
