"""Answers for the terminal: a plain stream, or the agent loop with openwen's tools."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from openwen.chat.service import ChatService
from openwen.engines.base import ChatRequest
from openwen.messages import AgentEvent


async def stream_answer(service: ChatService, request: ChatRequest, *, tools: bool
                        ) -> AsyncIterator[AgentEvent]:
    """Events of one answer. With ``tools`` the agent may call openwen's tools (asking on the
    terminal before side-effecting ones); otherwise the model answers directly."""
    if not tools:
        async for event in service.stream(request):
            yield event
        return
    from openwen.chat.agent import Agent
    from openwen.cli.tools_cmd import terminal_confirm
    from openwen.tools.registry import load_tools

    registry = await load_tools(service.settings)
    try:
        agent = Agent.from_settings(service, registry, service.settings,
                                    confirm=terminal_confirm())
        async with contextlib.aclosing(agent.run(request)) as steps:  # type: ignore[type-var]
            async for step in steps:
                yield step
    finally:
        await registry.aclose()
