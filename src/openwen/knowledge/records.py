"""Plain value types handed out by the knowledge base (no ORM objects leave it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

SearchMode = Literal["hybrid", "fulltext", "vector"]


@dataclass(frozen=True)
class Scope:
    """Where to look: one named collection, the documents attached to one conversation, or
    (neither given) all of the user's documents."""

    collection: str | None = None
    conversation_id: str | None = None

    @property
    def everything(self) -> bool:
        return self.collection is None and self.conversation_id is None


ALL = Scope()  # all of a user's documents


@dataclass(frozen=True)
class DocumentRecord:
    id: str
    filename: str
    kind: str
    sha256: str
    size_bytes: int
    pages: int | None
    chunks: int
    chars: int
    collections: tuple[str, ...]
    conversations: tuple[str, ...]
    created_at: datetime
    source: str | None = None
    embedding_model: str | None = None
    needs_reindex: bool = False  # indexed by an older openwen: `openwen docs reindex`

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "filename": self.filename, "kind": self.kind, "sha256": self.sha256,
            "size_bytes": self.size_bytes, "pages": self.pages, "chunks": self.chunks,
            "chars": self.chars, "collections": list(self.collections),
            "conversations": list(self.conversations), "created_at": self.created_at.isoformat(),
            "embedding_model": self.embedding_model, "needs_reindex": self.needs_reindex,
        }


@dataclass(frozen=True)
class AddResult:
    document: DocumentRecord
    created: bool  # False: an identical file was already there (nothing re-indexed)
    replaced: str | None = None  # id of the older version of the same source, now removed


@dataclass(frozen=True)
class CollectionRecord:
    name: str
    documents: int
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "documents": self.documents,
                "created_at": self.created_at.isoformat()}


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk, with what a citation needs."""

    chunk_id: int
    document_id: str
    filename: str
    page: int | None
    section: str | None
    text: str
    score: float
    char_start: int
    char_end: int
    ranks: dict[str, int] = field(default_factory=dict)  # rank per ranking (1 = best)

    @property
    def source(self) -> str:
        """``file.pdf, page 3, "Heading"``: where the passage is."""
        parts = [self.filename]
        if self.page is not None:
            parts.append(f"page {self.page}")
        if self.section:
            parts.append(f'"{self.section}"')
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk_id, "document_id": self.document_id,
            "filename": self.filename, "page": self.page, "section": self.section,
            "text": self.text, "score": self.score, "char_start": self.char_start,
            "char_end": self.char_end, "source": self.source,
        }


@dataclass(frozen=True)
class MemoryRecord:
    id: int
    text: str
    source: str
    created_at: datetime
    updated_at: datetime
    score: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "source": self.source,
                "created_at": self.created_at.isoformat(),
                "updated_at": self.updated_at.isoformat()}
