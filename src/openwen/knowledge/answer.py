"""Answering a question from documents, with citations, through the chat service.

    grounded = await prepare_answer(kb, user_id, "What does the lease say about pets?",
                                    collection="home")
    async for event in stream_answer(service, grounded):   # TextDelta ..., Done
        ...
    grounded.context.citations                              # what [1], [2] ... refer to

The system prompt is fixed text (byte-stable); the sources go in the user message, right before
the question.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from openwen.cache_salt import cache_salt_for
from openwen.knowledge.context import ContextMode, KnowledgeContext
from openwen.messages import Message, StreamEvent
from openwen.requests import ChatRequest, Sampling

if TYPE_CHECKING:
    from openwen.chat.service import ChatService
    from openwen.knowledge.base import KnowledgeBase

SOURCES_SYSTEM = (
    "You answer questions using the numbered sources given with each question. Base the "
    "answer on those sources only, and cite the ones you use by number in square brackets, "
    "like [1] or [2][3]. If the sources do not contain the answer, say that the documents do "
    "not say."
)
NO_SOURCES = "(No passage of the documents matched this question.)"


@dataclass(frozen=True)
class GroundedAnswer:
    request: ChatRequest
    context: KnowledgeContext
    question: str


def grounded_messages(question: str, context: KnowledgeContext,
                      system: str | None = None) -> tuple[Message, ...]:
    system_text = SOURCES_SYSTEM if not system else f"{system}\n\n{SOURCES_SYSTEM}"
    block = context.text or NO_SOURCES
    return (Message("system", system_text), Message("user", f"{block}\n\nQuestion: {question}"))


async def prepare_answer(kb: KnowledgeBase, user_id: int, question: str, *,
                         collection: str | None = None, conversation_id: str | None = None,
                         model: str | None = None, system: str | None = None,
                         mode: ContextMode = "auto", limit: int | None = None,
                         max_tokens: int | None = None, sampling: Sampling | None = None,
                         thinking: bool | None = None) -> GroundedAnswer:
    """Retrieve from the collection (or conversation) and build the chat request."""
    context = await kb.acontext(user_id, question, collection=collection,
                                conversation_id=conversation_id, mode=mode, limit=limit,
                                memories=False)
    request = ChatRequest(messages=grounded_messages(question, context, system), model=model,
                          max_tokens=max_tokens, sampling=sampling or Sampling(),
                          thinking=thinking, cache_salt=cache_salt_for(user_id))
    return GroundedAnswer(request, context, question)


async def stream_answer(service: ChatService,
                        grounded: GroundedAnswer) -> AsyncIterator[StreamEvent]:
    async with contextlib.aclosing(service.stream(grounded.request)) as events:  # type: ignore[type-var]
        async for event in events:
            yield event
