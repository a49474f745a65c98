"""The late-prompt context block: recalled memories and retrieved passages, with citations.

The block goes LATE in the prompt (after the conversation history, just before the new user
message), never into the system prompt: the system prompt and history stay byte-identical from
turn to turn, so the engine's prefix cache keeps hitting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from openwen.knowledge.records import DocumentRecord, MemoryRecord, Passage

ContextMode = Literal["auto", "chunks", "whole"]
WHOLE_DOCUMENT_CAP = 100_000  # characters, even when whole-document mode is asked for

HEADER = "Context for the next message (added by openwen; not written by the user)."
MEMORY_HEADER = "What you remember about the user (use it only when relevant):"
SOURCES_HEADER = ("Sources from the user's documents. When you use one, cite it by its number "
                  "in square brackets, like [1].")


@dataclass(frozen=True)
class Citation:
    """A numbered source: a passage (``chunk_id`` set) or a whole document."""

    number: int
    document_id: str
    filename: str
    chunk_id: int | None
    page: int | None
    section: str | None
    char_start: int
    char_end: int
    text: str
    score: float | None = None

    @property
    def label(self) -> str:
        parts = [self.filename]
        if self.page is not None:
            parts.append(f"page {self.page}")
        if self.section:
            parts.append(f'"{self.section}"')
        if self.chunk_id is None:
            parts.append("whole document")
        return ", ".join(parts)

    @classmethod
    def of_passage(cls, number: int, passage: Passage) -> Citation:
        return cls(number, passage.document_id, passage.filename, passage.chunk_id,
                   passage.page, passage.section, passage.char_start, passage.char_end,
                   passage.text, passage.score)

    @classmethod
    def of_document(cls, number: int, document: DocumentRecord, content: str) -> Citation:
        text = content[:WHOLE_DOCUMENT_CAP]
        return cls(number, document.id, document.filename, None, None, None, 0, len(text), text)

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number, "label": self.label, "document_id": self.document_id,
            "filename": self.filename, "chunk_id": self.chunk_id, "page": self.page,
            "section": self.section, "char_start": self.char_start, "char_end": self.char_end,
            "text": self.text, "score": self.score,
        }


@dataclass(frozen=True)
class KnowledgeContext:
    memories: list[MemoryRecord] = field(default_factory=list)
    citations: list[Citation] = field(default_factory=list)
    mode: Literal["none", "chunks", "whole"] = "none"

    @property
    def empty(self) -> bool:
        return not self.memories and not self.citations

    @property
    def text(self) -> str:
        """The block to insert late in the prompt ("" when there is nothing to add)."""
        return render(self.memories, self.citations)

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "memories": [m.to_json() for m in self.memories],
                "citations": [c.to_json() for c in self.citations]}


def render(memories: list[MemoryRecord], citations: list[Citation]) -> str:
    if not memories and not citations:
        return ""
    parts = [HEADER]
    if memories:
        parts.append(MEMORY_HEADER + "\n" + "\n".join(f"- {m.text}" for m in memories))
    if citations:
        sources = "\n\n".join(f"[{c.number}] {c.label}\n{c.text.strip()}" for c in citations)
        parts.append(SOURCES_HEADER + "\n\n" + sources)
    return "\n\n".join(parts)


def format_sources(citations: list[Citation]) -> str:
    """A plain "Sources:" list for the end of an answer."""
    return "Sources:\n" + "\n".join(f"[{c.number}] {c.label}" for c in citations)
