"""The model-decided tool use for small models: a grammar-constrained choice between answering
and each tool, then the chosen tool's call, then an answer. Scripted for the loop's logic, and
once on the real bundled model to show the choice is well-formed and the model's own."""

from __future__ import annotations

import json

import pytest
from test_agent import ScriptedChat, answer, calls, collect, registry, user

from openwen.chat.agent import Agent
from openwen.chat.service import ChatService
from openwen.chat.tool_decision import ANSWER, choice_format, decide, menu, short_description
from openwen.config import Settings
from openwen.messages import Done, Message, TextDelta, ToolResultEvent, Usage
from openwen.requests import ChatRequest, Sampling
from openwen.tools.builtin.calculator import make_calculator


def chose(name: str) -> list:
    return [TextDelta(json.dumps(name)), Done("stop", Usage(50, 3))]


def test_menu_is_compact() -> None:
    tools = registry().definitions()
    text = menu("What is 2+3?", tools)
    assert "- answer:" in text and "- add: Add two numbers" in text and "What is 2+3?" in text
    assert "properties" not in text  # no schemas: a line per tool
    assert len(text) < 400
    long = {"function": {"name": "x", "description": "One. Two three. " + "word " * 80}}
    assert short_description(long) == "One"
    assert choice_format(["answer", "add"])["json_schema"]["schema"]["enum"] == ["answer", "add"]


async def test_choosing_a_tool_forces_its_call_then_answers_without_tools() -> None:
    chat = ScriptedChat(chose("add"), calls(("add", {"a": 2, "b": 3})), answer("It is 5."))
    events = await collect(Agent(chat, registry(), decide=True), user("2+3?"))
    decision, call_round, answer_round = chat.requests
    assert decision.response_format is not None and decision.tools == ()
    assert decision.sampling.temperature == 0.0 and decision.max_tokens == 24
    assert [t["function"]["name"] for t in call_round.tools] == ["add"]  # only the chosen one
    assert call_round.tool_choice == {"type": "function", "function": {"name": "add"}}
    assert answer_round.tools == () and answer_round.tool_choice == "none"
    assert [m.role for m in answer_round.messages] == ["user", "assistant", "tool"]
    result = next(e for e in events if isinstance(e, ToolResultEvent))
    assert result.content == "5"
    done = events[-1]
    assert isinstance(done, Done) and done.usage.prompt_tokens == 50 + 10 + 20


async def test_choosing_to_answer_sends_no_tools_prompt() -> None:
    chat = ScriptedChat(chose(ANSWER), answer("Paris."))
    events = await collect(Agent(chat, registry(), decide=True), user("Capital of France?"))
    assert chat.requests[1].tools == () and chat.requests[1].response_format is None
    assert [e for e in events if isinstance(e, ToolResultEvent)] == []


async def test_an_unusable_choice_means_answering() -> None:
    chat = ScriptedChat([TextDelta('"rm -rf"'), Done("stop")], answer("Hi."))
    await collect(Agent(chat, registry(), decide=True), user("Hello"))
    assert chat.requests[1].tools == ()


async def test_without_decide_the_agent_is_unchanged() -> None:
    chat = ScriptedChat(answer("Hi."))
    await collect(Agent(chat, registry()), user("Hello"))
    assert len(chat.requests) == 1 and len(chat.requests[0].tools) == 2


@pytest.mark.slow
async def test_the_bundled_model_makes_a_well_formed_choice(settings: Settings) -> None:
    service = ChatService(settings)
    tools = registry(make_calculator()).definitions()
    try:
        picks = []
        for question in ("What is 37 times 91?", "What is the capital of France?"):
            request = ChatRequest(messages=(Message("system", "You are a helpful assistant."),
                                            Message("user", question)),
                                  model="smollm2", sampling=Sampling(seed=1))
            picked, done = await decide(service, request, tools)
            assert picked in (ANSWER, "calculator")
            assert done is not None and done.usage.completion_tokens <= 24
            picks.append(picked)
    finally:
        await service.aclose()
    print("bundled model chose:", picks)
