"""The agent loop: model, tool calls, results, model ... until a final answer or the step limit.

:meth:`Agent.run` takes a :class:`~openwen.engines.base.ChatRequest` and yields, in order:

- the engine's own events of each model round (:class:`TextDelta`, :class:`ReasoningDelta`,
  :class:`ToolCallEvent`), passed through as they stream;
- :class:`MessageEvent` for every message that completes (the assistant's turn, each tool
  result), ready to be persisted in conversation order;
- :class:`AgentStepEvent` when a round ends in tool calls, then one :class:`ToolResultEvent` per
  call as each finishes (independent calls run concurrently);
- :class:`AgentLimitEvent` if the step limit stops the run;
- one final :class:`Done` with the usage summed over all rounds. Its finish reason is the last
  round's (``stop``/``length``), ``tool_calls`` when the model called a tool the caller declared
  but the agent does not have (a client-side tool, handed back), or ``length`` at the step limit.

Tools the request declares (``request.tools``) that are not in the registry are the caller's: a
round that calls one ends the run so the caller can execute it. With no ``request.tools``, every
tool of the registry is offered. ``tool_choice`` ``required`` or a named tool applies to the first
round only (later rounds use ``auto``, or the model could never give its answer).

``decide`` (for models whose chat template cannot render tools, such as SmolLM2): before the
first round the model makes a short grammar-constrained choice between answering and each tool
(:mod:`openwen.chat.tool_decision`); it then answers without any tools prompt, or writes the
chosen tool's call under that tool's grammar and answers from its result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass, field, replace
from typing import Protocol

from openwen.chat.tool_decision import ANSWER, decide, tool_name
from openwen.config import Settings
from openwen.messages import (
    AgentEvent,
    AgentLimitEvent,
    AgentStepEvent,
    Done,
    Message,
    MessageEvent,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    Timings,
    ToolCall,
    ToolCallEvent,
    ToolResultEvent,
    Usage,
)
from openwen.requests import ChatRequest, ToolChoice
from openwen.tools.base import Tool, ToolOutput
from openwen.tools.registry import ToolRegistry, confirmation_required

log = logging.getLogger(__name__)

ConfirmFn = Callable[[ToolCall, Tool], Awaitable[bool]]
"""Asked before a tool that needs confirmation runs; ``False`` declines the call."""

DECLINED = "The user declined this call to {name}; do not retry it unless the user asks."
NO_CONFIRMER = ("The tool {name} needs the user's confirmation, and this interface cannot ask "
                "for it, so it was not run.")


class ChatStreamer(Protocol):
    """What the agent needs of the chat service (:class:`~openwen.chat.service.ChatService`)."""

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]: ...


@dataclass
class Agent:
    chat: ChatStreamer
    tools: ToolRegistry
    max_steps: int = 8
    confirm: ConfirmFn | None = None
    confirm_tools: Collection[str] = frozenset()
    tool_timeout: float | None = 60.0
    decide: bool = False

    @classmethod
    def from_settings(cls, chat: ChatStreamer, tools: ToolRegistry, settings: Settings, *,
                      confirm: ConfirmFn | None = None) -> Agent:
        return cls(chat, tools, max_steps=settings.agent_max_steps, confirm=confirm,
                   confirm_tools=confirmation_required(settings.tools_confirm, tools),
                   tool_timeout=settings.tool_timeout)

    async def run(self, request: ChatRequest) -> AsyncIterator[AgentEvent]:
        tools = request.tools or tuple(self.tools.definitions())
        declared = {(t.get("function") or t).get("name") for t in tools}
        messages = list(request.messages)
        choice = request.tool_choice
        total = _Totals()
        asking = asyncio.Lock()  # one confirmation question at a time
        after_first: ToolChoice = "auto"
        if self.decide and choice in (None, "auto"):
            picked, decided = await decide(self.chat, request, tools)
            if decided is not None:
                total.add(decided)
            if picked == ANSWER:
                tools = ()
            else:  # the chosen tool's call, then an answer from its result
                tools = tuple(t for t in tools if tool_name(t) == picked)
                choice, after_first = {"type": "function", "function": {"name": picked}}, "none"
        for step in range(1, self.max_steps + 1):
            round_ = _Round(step)
            ask = replace(request, messages=tuple(messages), tools=tools, tool_choice=choice)
            async with contextlib.aclosing(self.chat.stream(ask)) as events:  # type: ignore[type-var]
                async for event in events:
                    if (shown := round_.add(event)) is not None:
                        yield shown
            done = round_.done or Done("stop")
            total.add(done)
            assistant = round_.message()
            messages.append(assistant)
            yield MessageEvent(assistant, step)
            if not round_.calls:
                yield total.done(done.finish_reason)
                return
            yield AgentStepEvent(step, tuple(round_.calls), done.usage, done.timings)
            theirs = [c for c in round_.calls if c.name not in self.tools and c.name in declared]
            ours = [c for c in round_.calls if c not in theirs]
            results: dict[str, ToolResultEvent] = {}
            async with contextlib.aclosing(self._execute(ours, step, asking)) as running:
                async for result in running:
                    results[result.call.id] = result
                    yield result
            for call in ours:
                reply = Message("tool", results[call.id].content, tool_call_id=call.id,
                                name=call.name)
                messages.append(reply)
                yield MessageEvent(reply, step)
            if theirs:
                yield total.done("tool_calls")
                return
            if choice == "required" or isinstance(choice, dict):
                choice = after_first
                if after_first == "none":
                    tools = ()
        yield AgentLimitEvent(self.max_steps, (
            f"Stopped after {self.max_steps} tool steps without a final answer (the agent's step "
            "limit, agent_max_steps). Ask again to continue, or raise the limit."))
        yield total.done("length")

    async def _execute(self, calls: list[ToolCall], step: int, asking: asyncio.Lock
                       ) -> AsyncGenerator[ToolResultEvent, None]:
        """Run calls concurrently; yield each result as it finishes."""
        tasks = [asyncio.create_task(self._run_one(call, step, asking)) for call in calls]
        try:
            for next_done in asyncio.as_completed(tasks):
                yield await next_done
        finally:
            for task in tasks:
                task.cancel()

    async def _run_one(self, call: ToolCall, step: int, asking: asyncio.Lock
                       ) -> ToolResultEvent:
        tool = self.tools.get(call.name)
        if tool is not None and call.name in self.confirm_tools:
            async with asking:
                refusal = await self._ask(call, tool)
            if refusal is not None:
                return ToolResultEvent(call, refusal.text, refusal.error, 0.0, step, tool.source)
        started = time.perf_counter()
        output = await self.tools.call(call.name, call.arguments, timeout=self.tool_timeout)
        elapsed = (time.perf_counter() - started) * 1000
        source = tool.source if tool is not None else "unknown"
        return ToolResultEvent(call, output.text, output.error, elapsed, step, source,
                               output.images)

    async def _ask(self, call: ToolCall, tool: Tool) -> ToolOutput | None:
        """``None`` when the user confirms; otherwise the result the model gets instead."""
        if self.confirm is None:
            return ToolOutput(NO_CONFIRMER.format(name=call.name), error="declined")
        try:
            allowed = await self.confirm(call, tool)
        except Exception:
            log.warning("confirmation of %s failed; treating it as declined", call.name,
                        exc_info=True)
            allowed = False
        return None if allowed else ToolOutput(DECLINED.format(name=call.name), error="declined")


@dataclass
class _Round:
    """One model round's events gathered into the assistant message."""

    step: int
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    calls: list[ToolCall] = field(default_factory=list)
    done: Done | None = None

    def add(self, event: StreamEvent) -> StreamEvent | None:
        """Record an event; return what to pass on (``Done`` is held back)."""
        if isinstance(event, TextDelta):
            self.text.append(event.text)
        elif isinstance(event, ReasoningDelta):
            self.reasoning.append(event.text)
        elif isinstance(event, ToolCallEvent):
            call = event.call
            if not call.id or any(c.id == call.id for c in self.calls):
                call = replace(call, id=f"call_{uuid.uuid4().hex[:24]}")
                event = replace(event, call=call)
            self.calls.append(call)
        elif isinstance(event, Done):
            self.done = event
            return None
        return event

    def message(self) -> Message:
        return Message("assistant", "".join(self.text) or None,
                       reasoning="".join(self.reasoning) or None, tool_calls=tuple(self.calls))


@dataclass
class _Totals:
    usage: Usage = field(default_factory=Usage)
    timings: Timings | None = None

    def add(self, done: Done) -> None:
        u, t = done.usage, done.timings
        self.usage = Usage(self.usage.prompt_tokens + u.prompt_tokens,
                           self.usage.completion_tokens + u.completion_tokens,
                           self.usage.cached_tokens + u.cached_tokens)
        if self.timings is None:
            self.timings = t
        else:
            p = self.timings
            self.timings = Timings(p.queue_ms + t.queue_ms, p.prompt_ms + t.prompt_ms,
                                   p.decode_ms + t.decode_ms, p.ttft_ms)

    def done(self, finish_reason: str) -> Done:
        return Done(finish_reason, self.usage, self.timings or Timings())  # type: ignore[arg-type]
