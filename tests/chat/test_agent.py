"""The agent loop, scripted with a fake engine (a 135M model cannot be steered), and once
end-to-end on the real bundled model with a grammar-forced calculator call."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from openwen.chat.agent import Agent
from openwen.chat.service import ChatService
from openwen.config import Settings
from openwen.messages import (
    AgentLimitEvent,
    AgentStepEvent,
    Done,
    Message,
    MessageEvent,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    ToolResultEvent,
    Usage,
)
from openwen.requests import ChatRequest, Sampling
from openwen.tools.base import FunctionTool, Tool, tool
from openwen.tools.builtin.calculator import evaluate, format_number, make_calculator
from openwen.tools.registry import ToolRegistry

Round = list[StreamEvent]


class ScriptedChat:
    """Answers each request with the next scripted round; remembers what it was asked."""

    def __init__(self, *rounds: Round):
        self.rounds = list(rounds)
        self.requests: list[ChatRequest] = []

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        self.requests.append(request)
        for event in self.rounds.pop(0):
            yield event


def calls(*specs: tuple[str, dict[str, Any] | str], finish: str = "tool_calls") -> Round:
    events: Round = []
    for i, (name, args) in enumerate(specs):
        text = args if isinstance(args, str) else json.dumps(args)
        events.append(ToolCallEvent(i, ToolCall(f"call_{name}_{i}", name, text)))
    return [*events, Done(finish, Usage(10, 5))]  # type: ignore[arg-type]


def answer(text: str) -> Round:
    return [TextDelta(text), Done("stop", Usage(20, 3))]


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@tool(side_effects=True)
def delete_everything(confirm_code: str) -> str:
    """A dangerous tool."""
    DELETED.append(confirm_code)
    return "deleted"


DELETED: list[str] = []


def registry(*tools: Tool) -> ToolRegistry:
    return ToolRegistry(tools or (add, make_calculator()))


async def collect(agent: Agent, request: ChatRequest) -> list[Any]:
    return [event async for event in agent.run(request)]


def user(text: str) -> ChatRequest:
    return ChatRequest(messages=(Message("user", text),))


async def test_call_result_answer() -> None:
    chat = ScriptedChat(calls(("add", {"a": 2, "b": 3})), answer("It is 5."))
    events = await collect(Agent(chat, registry()), user("2+3?"))

    kinds = [e.kind for e in events]
    assert kinds == ["tool_call", "message", "agent_step", "tool_result", "message", "text",
                     "message", "done"]
    result = next(e for e in events if isinstance(e, ToolResultEvent))
    assert (result.call.name, result.content, result.error, result.step) == ("add", "5", None, 1)
    assert result.source == "builtin" and result.duration_ms >= 0
    assert isinstance(events[2], AgentStepEvent) and events[2].tool_calls[0].name == "add"

    # the model saw its own call and the result, as OpenAI-style messages
    second = chat.requests[1].messages
    assert [m.role for m in second] == ["user", "assistant", "tool"]
    assert second[1].tool_calls[0].name == "add"
    assert second[2].content == "5" and second[2].tool_call_id == second[1].tool_calls[0].id
    assert {t["function"]["name"] for t in chat.requests[0].tools} == {"add", "calculator"}

    stored = [e.message for e in events if isinstance(e, MessageEvent)]
    assert [m.role for m in stored] == ["assistant", "tool", "assistant"]
    assert stored[-1].content == "It is 5."
    done = events[-1]
    assert isinstance(done, Done) and done.finish_reason == "stop"
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (30, 8)


async def test_independent_calls_run_concurrently() -> None:
    started: list[str] = []
    both_started = asyncio.Event()

    async def meet(name: str) -> str:
        """Waits until its partner has started too (deadlocks if run one after the other)."""
        started.append(name)
        if len(started) == 2:
            both_started.set()
        await asyncio.wait_for(both_started.wait(), timeout=10)
        return f"{name} met"

    left, right = FunctionTool(meet, name="left"), FunctionTool(meet, name="right")
    chat = ScriptedChat(calls(("left", {"name": "L"}), ("right", {"name": "R"})), answer("ok"))
    events = await collect(Agent(chat, registry(left, right)), user("go"))
    results = {e.call.name: e.content for e in events if isinstance(e, ToolResultEvent)}
    assert results == {"left": "L met", "right": "R met"}
    tool_messages = [m for m in chat.requests[1].messages if m.role == "tool"]
    assert [m.name for m in tool_messages] == ["left", "right"]  # in the model's call order


async def test_bad_arguments_reach_the_model_and_the_loop_goes_on() -> None:
    chat = ScriptedChat(calls(("add", '{"a": 1,')), calls(("add", {"a": "one", "b": 2})),
                        calls(("nope", {})), answer("gave up"))
    events = await collect(Agent(chat, registry()), user("add"))
    errors = [e for e in events if isinstance(e, ToolResultEvent)]
    assert [e.error for e in errors] == ["invalid_arguments", "invalid_arguments", "unknown_tool"]
    assert "not valid JSON" in errors[0].content
    assert "'a': Input should be a valid integer" in errors[1].content
    assert "no tool named 'nope'" in errors[2].content
    assert chat.requests[1].messages[-1].content == errors[0].content
    assert events[-1].finish_reason == "stop" and len(chat.requests) == 4


async def test_the_step_limit_stops_with_a_clear_message() -> None:
    chat = ScriptedChat(*[calls(("add", {"a": i, "b": 1})) for i in range(3)])
    events = await collect(Agent(chat, registry(), max_steps=3), user("loop"))
    limit = [e for e in events if isinstance(e, AgentLimitEvent)]
    assert len(limit) == 1 and "Stopped after 3 tool steps" in limit[0].message
    assert len(chat.requests) == 3
    assert sum(isinstance(e, ToolResultEvent) for e in events) == 3  # every call got its result
    assert events[-1] == Done("length", Usage(30, 15), events[-1].timings)


async def test_side_effecting_tools_ask_first() -> None:
    DELETED.clear()
    asked: list[str] = []

    async def deny(call: ToolCall, tool: Tool) -> bool:
        asked.append(f"{tool.name}:{call.arguments}")
        return False

    async def allow(call: ToolCall, tool: Tool) -> bool:
        return True

    tools = registry(add, delete_everything)
    confirm = {"delete_everything"}
    script = (calls(("delete_everything", {"confirm_code": "x"}), ("add", {"a": 1, "b": 1})),
              answer("done"))
    events = await collect(Agent(ScriptedChat(*script), tools, confirm=deny,
                                 confirm_tools=confirm), user("wipe"))
    results = {e.call.name: e for e in events if isinstance(e, ToolResultEvent)}
    assert asked == ['delete_everything:{"confirm_code": "x"}']
    assert results["delete_everything"].error == "declined"
    assert "the user declined" in results["delete_everything"].content.lower()
    assert results["add"].content == "2" and DELETED == []

    events = await collect(Agent(ScriptedChat(*script), tools, confirm=None,
                                 confirm_tools=confirm), user("wipe"))
    refused = next(e for e in events if isinstance(e, ToolResultEvent)
                   and e.call.name == "delete_everything")
    assert refused.error == "declined" and "cannot ask" in refused.content and DELETED == []

    await collect(Agent(ScriptedChat(*script), tools, confirm=allow, confirm_tools=confirm),
                  user("wipe"))
    assert DELETED == ["x"]


def test_confirmation_policy_from_settings(settings: Settings) -> None:
    agent = Agent.from_settings(ScriptedChat(), registry(add, delete_everything), settings)
    assert set(agent.confirm_tools) == {"delete_everything"}
    assert agent.max_steps == settings.agent_max_steps


async def test_required_tool_choice_applies_to_the_first_round_only() -> None:
    chat = ScriptedChat(calls(("add", {"a": 1, "b": 2})), answer("3"))
    request = ChatRequest(messages=(Message("user", "sum"),), tool_choice="required")
    await collect(Agent(chat, registry()), request)
    assert [r.tool_choice for r in chat.requests] == ["required", "auto"]


async def test_client_declared_tools_are_handed_back_not_run() -> None:
    client_tool = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}
    chat = ScriptedChat(calls(("get_weather", {"city": "Paris"}), ("add", {"a": 1, "b": 1})))
    request = ChatRequest(messages=(Message("user", "weather?"),),
                          tools=(client_tool, add.definition()))
    events = await collect(Agent(chat, registry()), request)
    ran = [e.call.name for e in events if isinstance(e, ToolResultEvent)]
    assert ran == ["add"]
    assert events[-1].finish_reason == "tool_calls" and len(chat.requests) == 1
    assert chat.requests[0].tools == request.tools


async def test_a_tool_that_crashes_does_not_end_the_chat() -> None:
    @tool
    def broken() -> str:
        """Always crashes."""
        raise RuntimeError("disk on fire")

    chat = ScriptedChat(calls(("broken", {})), answer("sorry"))
    events = await collect(Agent(chat, registry(broken)), user("try"))
    result = next(e for e in events if isinstance(e, ToolResultEvent))
    assert result.error == "tool_failed" and "disk on fire" in result.content
    assert events[-1].finish_reason == "stop"


@pytest.mark.slow
async def test_end_to_end_on_the_bundled_model(settings: Settings) -> None:
    """tool_choice="required" makes the embedded engine emit a grammar-forced, well-formed
    calculator call; the agent runs it and feeds the result back."""
    service = ChatService(settings)
    try:
        request = ChatRequest(
            messages=(Message("user", "Compute 12 * 7."),),
            model="smollm2", tool_choice="required", parallel_tool_calls=False,
            max_tokens=40, sampling=Sampling(temperature=0.0, seed=7))
        agent = Agent(service, registry(make_calculator()), max_steps=2)
        events = await collect(agent, request)
    finally:
        await service.aclose()
    results = [e for e in events if isinstance(e, ToolResultEvent)]
    assert results and results[0].call.name == "calculator" and results[0].step == 1
    arguments = json.loads(results[0].call.arguments)
    assert isinstance(arguments["expression"], str)
    try:
        expected = format_number(evaluate(arguments["expression"]))
    except Exception as exc:  # the model may write nonsense; then the model must see why
        assert results[0].error == "tool_error" and str(exc) in results[0].content
    else:
        assert results[0].error is None and results[0].content == expected
    stored = [e.message for e in events if isinstance(e, MessageEvent)]
    assert [m.role for m in stored[:2]] == ["assistant", "tool"]
    assert stored[1].tool_call_id == stored[0].tool_calls[0].id
    assert isinstance(events[-1], Done)
    assert events[-1].usage.completion_tokens > 0


async def test_closing_the_run_cancels_running_tools() -> None:
    cancelled = asyncio.Event()

    async def forever() -> str:
        """Never finishes on its own."""
        try:
            await asyncio.sleep(3600)
        finally:
            cancelled.set()
        return "unreachable"

    quick = FunctionTool(lambda: "fast", name="quick")
    slow = FunctionTool(forever, name="slow")
    chat = ScriptedChat(calls(("quick", {}), ("slow", {})))
    run = Agent(chat, registry(quick, slow)).run(user("go"))
    async for event in run:
        if isinstance(event, ToolResultEvent):  # the quick one; the slow one is still running
            assert event.call.name == "quick"
            break
    await run.aclose()  # type: ignore[attr-defined]
    await asyncio.wait_for(cancelled.wait(), timeout=10)
