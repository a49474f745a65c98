"""Tool use that a small model can get right: the model first makes one short, grammar-constrained
choice between answering and each tool, then (when it chose a tool) writes that tool's call under
the tool's own grammar, then answers from the result.

A 135M model given the full tools prompt (about 1,000 tokens of JSON schemas) never calls a tool;
asked to pick one word from a short menu it can. The choice is the model's own: the menu is the
question, the tools' one-line descriptions and the options; the grammar only keeps the reply to
one of the option names (no keyword rule looks at the question). The menu is compact: a tool's
description is cut to its first sentence.

Used by the agent (``Agent(decide=True)``) for models whose chat template cannot render tools; a
model that can (Qwen) gets the normal tools prompt and decides in its own way.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any, Protocol

from openwen.messages import Done, Message, StreamEvent, TextDelta
from openwen.requests import ChatRequest, Sampling

ANSWER = "answer"
MAX_DESCRIPTION = 90
MENU_INSTRUCTIONS = (
    "Decide how to reply to the question below. Options:\n{options}\n\n"
    "Question: {question}\n\nReply with the name of the one option that fits best."
)


class Streamer(Protocol):
    def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]: ...


def short_description(tool: dict[str, Any]) -> str:
    """The first sentence of a tool definition's description, at most ``MAX_DESCRIPTION``."""
    function = tool.get("function") or tool
    text = " ".join(str(function.get("description") or "").split())
    first = re.split(r"(?<=[.;:])\s", text, maxsplit=1)[0].rstrip(".;:")
    return first[:MAX_DESCRIPTION]


def tool_name(tool: dict[str, Any]) -> str:
    return str((tool.get("function") or tool).get("name"))


def menu(question: str, tools: Sequence[dict[str, Any]]) -> str:
    options = [f"- {ANSWER}: answer from what you know"]
    options += [f"- {tool_name(t)}: {short_description(t)}" for t in tools]
    return MENU_INSTRUCTIONS.format(options="\n".join(options), question=question.strip())


def choice_format(names: Sequence[str]) -> dict[str, Any]:
    """A ``response_format`` whose grammar allows exactly one of ``names`` (as a JSON string)."""
    return {"type": "json_schema",
            "json_schema": {"name": "choice", "schema": {"type": "string", "enum": list(names)}}}


def last_question(messages: Sequence[Message]) -> str | None:
    for message in reversed(messages):
        if message.role == "user":
            return message.content or ""
        if message.role in ("assistant", "tool"):
            return None  # a tool round is under way: no new decision
    return None


async def decide(chat: Streamer, request: ChatRequest, tools: Sequence[dict[str, Any]]
                 ) -> tuple[str, Done | None]:
    """The model's choice for the newest question: ``ANSWER`` or a tool's name (and the round's
    ``Done``, for the usage). Any failure is ``ANSWER``: the plain answer is always possible."""
    question = last_question(request.messages)
    if question is None or not tools:
        return ANSWER, None
    names = [ANSWER, *(tool_name(t) for t in tools)]
    system = [m for m in request.messages[:1] if m.role in ("system", "developer")]
    ask = replace(
        request,
        messages=(*system, Message("user", menu(question, tools))),
        tools=(),
        tool_choice=None,
        response_format=choice_format(names),
        max_tokens=24,
        thinking=False,
        sampling=Sampling(temperature=0.0, seed=request.sampling.seed),
    )
    text, done = [], None
    async with contextlib.aclosing(chat.stream(ask)) as events:  # type: ignore[type-var]
        async for event in events:
            if isinstance(event, TextDelta):
                text.append(event.text)
            elif isinstance(event, Done):
                done = event
    picked = "".join(text).strip().strip('"')
    return (picked if picked in names else ANSWER), done
