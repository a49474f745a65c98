"""The one way to produce an answer: plain, or with tools through the agent loop, as typed events.

Every interface (the CLI, each HTTP API dialect, the web app's stored conversations) calls
:func:`answer`; none chooses between the engine and the agent on its own::

    async with contextlib.aclosing(answer(service, request, tools=registry)) as events:
        async for event in events:
            ...

``tools=None`` streams the model's answer directly; a :class:`~openwen.tools.registry.ToolRegistry`
runs the :class:`~openwen.chat.agent.Agent`, which executes the registry's tools (asking
``confirm`` first where the ``tools_confirm`` policy says so) and hands back calls of tools the
request declares but the registry lacks (the client's). The events, all from
:mod:`openwen.messages`:

- :class:`TextDelta`, :class:`ReasoningDelta`: answer text (with logprobs when asked) and thinking;
- :class:`ToolCallEvent`: a complete tool call the model made;
- with tools only: :class:`ToolResultEvent` (a call the agent ran), :class:`AgentStepEvent`
  (a round ended in tool calls), :class:`MessageEvent` (a message to persist),
  :class:`AgentLimitEvent` (the step limit stopped the run);
- :class:`Done`, always last: usage, timings and the finish reason (``stop``, ``length``,
  ``tool_calls``, ``cancelled``).

Errors are raised, never yielded: an :class:`~openwen.errors.OpenwenError` (its ``status``,
``type``, ``code`` and ``param`` say what went wrong) from the first ``anext`` means nothing was
generated (unknown model, prompt over the context, full queue, bad schema); later it means the
answer broke off. Cancellation: closing the iterator (``contextlib.aclosing``) or cancelling the
task reading it stops generation at once, tools included.

An API client that is not told about the server's own tool rounds reads the agent's run through
:func:`one_answer`: the text of every round as one text, only the client's tool calls as
:class:`ToolCallEvent`, the server's as :class:`ServerToolCall` and :class:`ToolResultEvent`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from openwen.chat.agent import Agent, ConfirmFn
from openwen.chat.arithmetic import Calculated, finish_arithmetic
from openwen.messages import (
    AgentEvent,
    AgentLimitEvent,
    AgentStepEvent,
    Done,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    ToolResultEvent,
)
from openwen.requests import ChatRequest
from openwen.tools.registry import ToolRegistry

if TYPE_CHECKING:
    from openwen.chat.service import ChatService

ROUND_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class ServerToolCall:
    """The model called one of the server's tools (the agent runs it; the client only sees it)."""

    call: ToolCall
    kind: Literal["server_tool_call"] = "server_tool_call"


OneAnswerEvent = StreamEvent | ServerToolCall | ToolResultEvent


def answer(service: ChatService, request: ChatRequest, *, tools: ToolRegistry | None = None,
           confirm: ConfirmFn | None = None, decide: bool = False,
           arithmetic: bool = False, on_calculated: Calculated | None = None
           ) -> AsyncIterator[AgentEvent]:
    """The events of one answer to ``request`` (see the module docstring). ``decide``: the
    model first chooses between answering and each tool (see :mod:`openwen.chat.tool_decision`;
    for models whose template cannot render tools). ``arithmetic``: the calculator finishes an
    equation the answer writes, and the answer ends there (see :mod:`openwen.chat.arithmetic`;
    ``on_calculated`` is told the equation and the result)."""
    events: AsyncIterator[AgentEvent]
    if tools is None:
        events = service.stream(request)
    else:
        agent = Agent.from_settings(service, tools, service.settings, confirm=confirm)
        agent.decide = decide
        events = agent.run(request)
    return finish_arithmetic(events, on_calculated) if arithmetic else events


async def one_answer(events: AsyncIterator[AgentEvent], client_tools: Collection[str]
                     ) -> AsyncIterator[OneAnswerEvent]:
    """An agent's run as one answer: the text of every round joined by a blank line, the
    client's tool calls (names in ``client_tools``) indexed from 0, every other call as
    :class:`ServerToolCall` then :class:`ToolResultEvent`, the step limit's note as text, then
    the run's :class:`Done`."""
    index, wrote, new_round = 0, False, False
    async with contextlib.aclosing(events) as running:  # type: ignore[type-var]
        async for event in running:
            if isinstance(event, TextDelta):
                if new_round and wrote and event.text:
                    yield TextDelta(ROUND_SEPARATOR)
                    new_round = False
                wrote = wrote or bool(event.text)
                yield event
            elif isinstance(event, ReasoningDelta | Done | ToolResultEvent):
                yield event
            elif isinstance(event, ToolCallEvent):
                if event.call.name in client_tools:
                    yield replace(event, index=index)
                    index += 1
                else:
                    yield ServerToolCall(event.call)
            elif isinstance(event, AgentStepEvent):
                new_round = True
            elif isinstance(event, AgentLimitEvent):
                yield TextDelta((ROUND_SEPARATOR if wrote else "") + event.message)
                wrote = True
