"""Answers for the terminal: the answer path, with openwen's shared tools when asked."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from openwen.chat.answer import answer
from openwen.chat.service import ChatService
from openwen.messages import AgentEvent
from openwen.requests import ChatRequest


async def stream_answer(service: ChatService, request: ChatRequest, *, tools: bool
                        ) -> AsyncIterator[AgentEvent]:
    """Events of one answer. With ``tools`` the agent may call openwen's tools (the local
    user's, MCP servers started for this answer; side-effecting ones ask on the terminal first);
    otherwise the model answers directly."""
    if not tools:
        async with contextlib.aclosing(answer(service, request)) as events:  # type: ignore[type-var]
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
                                              confirm=terminal_confirm())) as events:
            async for event in events:
                yield event
    finally:
        await shared.aclose()
