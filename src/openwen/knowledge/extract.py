"""Automatic memory extraction (off unless a user or the server turns it on): the model is asked
to list lasting facts about the user found in a message; each is stored as a memory."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from openwen.messages import Message, TextDelta
from openwen.requests import ChatRequest, Sampling

if TYPE_CHECKING:
    from openwen.chat.service import ChatService

EXTRACT_SYSTEM = (
    "You find lasting facts about the user in the message they wrote: names, relationships, "
    "preferences, plans, important dates, where they live or work. Write each fact on its own "
    "line starting with \"- \", as a short sentence about \"the user\". Skip questions, "
    "requests and passing remarks. If there is nothing worth remembering, reply NONE."
)
BULLET = re.compile(r"\s*(?:[-*\u2022]|\d+[.)])\s+(.+)")
MIN_FACT, MAX_FACT = 8, 300


def parse_facts(reply: str, limit: int = 5) -> list[str]:
    facts: list[str] = []
    for line in reply.splitlines():
        match = BULLET.fullmatch(line)
        if not match:
            continue
        fact = match.group(1).strip()
        if MIN_FACT <= len(fact) <= MAX_FACT and fact.upper() != "NONE" and fact not in facts:
            facts.append(fact)
    return facts[:limit]


async def extract_facts(service: ChatService, message: str, *, model: str | None = None,
                        limit: int = 5) -> list[str]:
    """Facts about the user in ``message`` according to the model (possibly none)."""
    request = ChatRequest(
        messages=(Message("system", EXTRACT_SYSTEM), Message("user", message[:4000])),
        model=model, max_tokens=200, sampling=Sampling(temperature=0.0), thinking=False)
    reply = []
    async for event in service.stream(request):
        if isinstance(event, TextDelta):
            reply.append(event.text)
    return parse_facts("".join(reply), limit)
