"""Documents and memory for one answer of a stored conversation.

:func:`gather` runs before the model is asked: it stores an explicit "remember that ..." of the
new user message, then builds the late-prompt context block from the user's recalled memories,
the documents attached to the conversation and the conversation's collection (its
``settings.collection``), numbering the sources [1], [2] ... across both.

:func:`with_context` puts that block LATE in the prompt: into the newest user message of the
request (after the history, before the user's own words), never into the system prompt and never
into what is stored, so the prompt's prefix stays byte-identical from turn to turn and the
engine's prefix cache keeps hitting.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from openwen.errors import OpenwenError
from openwen.messages import Message

if TYPE_CHECKING:
    from openwen.knowledge import Citation, KnowledgeBase, MemoryRecord

log = logging.getLogger(__name__)

EXCERPT_CHARS = 240
USER_MESSAGE_HEADER = "The user's message:"


@dataclass(frozen=True)
class TurnKnowledge:
    """What documents and memory add to one answer."""

    text: str = ""  # the late-prompt block ("" when there is nothing to add)
    citations: tuple[Citation, ...] = ()
    memories: tuple[MemoryRecord, ...] = ()
    remembered: MemoryRecord | None = None  # stored from this user message
    error: str | None = None  # retrieval failed; the answer goes on without it

    @property
    def empty(self) -> bool:
        return not (self.citations or self.memories or self.remembered or self.error)

    def citations_json(self) -> list[dict[str, Any]]:
        """The sources as the answer's metadata keeps them (a short excerpt, not the text)."""
        out = []
        for c in self.citations:
            data = c.to_json()
            text = " ".join(data.pop("text").split())
            data["excerpt"] = text[:EXCERPT_CHARS] + ("…" if len(text) > EXCERPT_CHARS else "")
            out.append(data)
        return out

    def describe(self) -> dict[str, Any]:
        """Keys for the answer's metadata (absent when empty)."""
        meta: dict[str, Any] = {}
        if self.citations:
            meta["citations"] = self.citations_json()
        if self.memories:
            meta["memories_used"] = [{"id": m.id, "text": m.text} for m in self.memories]
        if self.error:
            meta["knowledge_error"] = self.error
        return meta


async def gather(kb: KnowledgeBase, user_id: int, question: str, *, conversation_id: str,
                 collection: str | None, user_message: str | None) -> TurnKnowledge:
    """Remember, recall and retrieve for one answer (blocking work runs in a worker thread).
    A failure is logged and reported in ``error``; it never stops the answer."""
    return await asyncio.to_thread(_gather, kb, user_id, question, conversation_id,
                                   collection, user_message)


def _gather(kb: KnowledgeBase, user_id: int, question: str, conversation_id: str,
            collection: str | None, user_message: str | None) -> TurnKnowledge:
    from openwen.knowledge.context import render

    remembered = None
    try:
        if user_message is not None:
            remembered = kb.remember_from_message(user_id, user_message)
        attached = kb.context(user_id, question, conversation_id=conversation_id)
        citations = list(attached.citations)
        if collection:
            named = kb.context(user_id, question, collection=collection, memories=False)
            citations += named.citations
    except OpenwenError as exc:
        log.warning("documents and memory left out of an answer: %s", exc.message)
        return TurnKnowledge(remembered=remembered, error=exc.message)
    except Exception as exc:  # an embedding model that fails to load, a broken index ...
        log.exception("documents and memory left out of an answer")
        return TurnKnowledge(remembered=remembered, error=f"{type(exc).__name__}: {exc}")
    numbered = [replace(c, number=n) for n, c in enumerate(_unique(citations), 1)]
    memories = list(attached.memories)
    return TurnKnowledge(render(memories, numbered), tuple(numbered), tuple(memories),
                         remembered)


def _unique(citations: list[Citation]) -> list[Citation]:
    """Each passage (or whole document) once, even when it is in both scopes."""
    seen = set()
    out = []
    for c in citations:
        key = (c.document_id, c.chunk_id)
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def with_context(history: list[Message], block: str) -> list[Message]:
    """``history`` with ``block`` put into its newest user message (the one being answered)."""
    if not block or not history or history[-1].role != "user":
        return history
    last = history[-1]
    content = f"{block}\n\n{USER_MESSAGE_HEADER}\n{last.content or ''}"
    return [*history[:-1], replace(last, content=content)]
