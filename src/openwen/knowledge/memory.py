"""Long-term memory: facts about a user, stored explicitly and recalled when relevant.

Facts come from the user ("remember that ..." in a chat, the settings page, ``openwen memory
add``), from the model through the ``remember`` tool, or (off by default) from automatic
extraction. Recall ranks a user's memories against the new message with the same hybrid
ranking as documents and keeps those that match words or are similar enough.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from openwen.errors import InvalidRequestError, NotFoundError
from openwen.knowledge.documents import bump_version, read_version
from openwen.knowledge.embedder import TextEmbedder, embed_query, reads_cjk, to_blob
from openwen.knowledge.fulltext import rank_memories
from openwen.knowledge.records import MemoryRecord
from openwen.knowledge.retrieval import for_model, fuse
from openwen.knowledge.settings import KnowledgeSettings
from openwen.knowledge.vectors import Matrix, MatrixCache
from openwen.storage.base import clean_text
from openwen.storage.db import Database
from openwen.storage.knowledge_models import Memory
from openwen.storage.models import utcnow

MAX_MEMORY_CHARS = 1000
MAX_MEMORIES = 10_000
SOURCES = frozenset({"user", "chat", "tool", "extracted", "api"})

REMEMBER = re.compile(
    r"\s*(?:(?:hey|ok|okay|so|and)[,\s]+)?(?:please[,\s]+)?(?:(?:can|could|would|will) you\s+)?"
    r"(?:please\s+)?(?P<verb>remember|don'?t forget|do not forget|never forget|keep in mind|"
    r"note|make a note|take note)\b\s*(?P<that>that\b|:|,)?\s*(?P<fact>.+)",
    re.IGNORECASE | re.DOTALL)
QUESTION_START = re.compile(
    r"(what|when|where|who|whom|whose|why|how|which|if|whether|to|me|it|this|us|anything)\b",
    re.IGNORECASE)


def detect_remember(message: str) -> str | None:
    """The fact in an explicit request to remember something ("Remember that my sister is
    called Ana." -> "My sister is called Ana."), or None for anything else."""
    if not isinstance(message, str) or len(message) > 2000:
        return None
    match = REMEMBER.fullmatch(message.strip())
    if match is None:
        return None
    fact = match.group("fact").strip().rstrip(".!?").strip()
    asks = message.strip().endswith("?") and not re.match(
        r"\s*(?:please\s+)?(?:can|could|would|will) you", message, re.IGNORECASE)
    if not fact or asks or (match.group("that") is None and QUESTION_START.match(fact)):
        return None
    return fact[0].upper() + fact[1:] + "."


def check_memory_text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequestError("a memory is a non-empty text", param="text")
    value = " ".join(value.split())
    if len(value) > MAX_MEMORY_CHARS:
        raise InvalidRequestError(f"a memory is at most {MAX_MEMORY_CHARS} characters",
                                  param="text")
    return clean_text(value)


def memory_not_found(memory_id: object) -> NotFoundError:
    return NotFoundError(f"memory {memory_id!r} not found", param="memory_id")


def _record(row: Memory, score: float | None = None) -> MemoryRecord:
    return MemoryRecord(row.id, row.text, row.source, row.created_at, row.updated_at, score)


class MemoryStore:
    def __init__(self, db: Database, embedder: TextEmbedder, cache: MatrixCache,
                 settings: KnowledgeSettings):
        self.db = db
        self.embedder = embedder
        self.cache = cache
        self.settings = settings

    def add(self, user_id: int, fact: str, source: str = "user") -> MemoryRecord:
        """Store a fact (the same text twice is stored once). Blocking."""
        fact = check_memory_text(fact)
        if source not in SOURCES:
            raise InvalidRequestError(f"source is one of {', '.join(sorted(SOURCES))}",
                                      param="source")
        vector = self.embedder.embed([fact])[0]
        with self.db.write() as s:
            same = s.scalar(select(Memory).where(
                Memory.user_id == user_id, func.lower(Memory.text) == fact.lower()))
            if same is not None:
                return _record(same)
            if (s.scalar(select(func.count()).where(Memory.user_id == user_id)) or 0) \
                    >= MAX_MEMORIES:
                raise InvalidRequestError(f"at most {MAX_MEMORIES} memories; delete some first",
                                          code="too_many_memories")
            now = utcnow()
            row = Memory(user_id=user_id, text=fact, source=source, embedding=to_blob(vector),
                         embedding_model=self.embedder.name, created_at=now, updated_at=now)
            s.add(row)
            bump_version(s, user_id, "memories")
            s.flush()
            return _record(row)

    def all(self, user_id: int) -> list[MemoryRecord]:
        with self.db.read() as s:
            rows = s.scalars(select(Memory).where(Memory.user_id == user_id)
                             .order_by(Memory.id))
            return [_record(r) for r in rows]

    def get(self, user_id: int, memory_id: int) -> MemoryRecord:
        with self.db.read() as s:
            return _record(self._owned(s, user_id, memory_id))

    def edit(self, user_id: int, memory_id: int, fact: str) -> MemoryRecord:
        fact = check_memory_text(fact)
        vector = self.embedder.embed([fact])[0]
        with self.db.write() as s:
            row = self._owned(s, user_id, memory_id)
            row.text, row.embedding, row.embedding_model = fact, to_blob(vector), \
                self.embedder.name
            row.updated_at = utcnow()
            bump_version(s, user_id, "memories")
            s.flush()
            return _record(row)

    def delete(self, user_id: int, memory_id: int) -> MemoryRecord:
        with self.db.write() as s:
            row = self._owned(s, user_id, memory_id)
            record = _record(row)
            s.delete(row)
            bump_version(s, user_id, "memories")
            return record

    def clear(self, user_id: int) -> int:
        """Forget everything about the user; returns how many memories there were."""
        with self.db.write() as s:
            result = s.execute(text("DELETE FROM memories WHERE user_id = :u"), {"u": user_id})
            bump_version(s, user_id, "memories")
            return int(getattr(result, "rowcount", 0))

    @staticmethod
    def _owned(s: Session, user_id: int, memory_id: int) -> Memory:
        if not isinstance(memory_id, int) or isinstance(memory_id, bool):
            raise memory_not_found(memory_id)
        row = s.scalar(select(Memory).where(Memory.id == memory_id, Memory.user_id == user_id))
        if row is None:
            raise memory_not_found(memory_id)
        return row

    def recall(self, user_id: int, query: str, *, limit: int | None = None) -> list[MemoryRecord]:
        """The memories relevant to ``query``, best first: each shares a word with it or is
        similar enough (cosine >= ``memory_min_similarity``). Blocking."""
        if not isinstance(query, str) or not query.strip():
            return []
        limit = limit or self.settings.memory_top_k
        with self.db.read() as s:
            if read_version(s, user_id, "memories") == 0:
                return []  # nothing stored yet: skip embedding the query
        vector = embed_query(self.embedder, [query])[0]
        with self.db.read() as s:
            version = read_version(s, user_id, "memories")
            model = self.embedder.name
            matrix = self.cache.get(("memories", user_id, model), version,
                                    lambda: self._matrix(s, user_id, model))
            similar = [(i, score) for i, score in matrix.top(vector, 50)
                       if score >= self.settings.memory_min_similarity]
            words = rank_memories(s, user_id, query, limit=50)
            fused = fuse({"fulltext": words, "vector": similar},
                         for_model(self.settings, model), query=query,
                         reads_cjk=reads_cjk(self.embedder))[:limit]
            rows = {r.id: r for r in s.scalars(select(Memory).where(
                Memory.user_id == user_id, Memory.id.in_([i for i, _, _ in fused])))}
            return [_record(rows[i], score) for i, score, _ in fused if i in rows]

    @staticmethod
    def _matrix(s: Session, user_id: int, model: str) -> Matrix:
        rows = s.execute(select(Memory.id, Memory.embedding).where(
            Memory.user_id == user_id, Memory.embedding_model == model,
            Memory.embedding.is_not(None)).order_by(Memory.id))
        return Matrix.build([(int(i), "memories", bytes(b)) for i, b in rows if b is not None])


def make_remember_tool(memories: MemoryStore,
                       user_id: int) -> Callable[[str], Awaitable[str]]:
    """The ``remember`` tool bound to one user, as a plain async function for the tool registry
    (its schema comes from the type hints and docstring)."""

    async def remember(fact: str) -> str:
        """Save a lasting fact about the user so it can be recalled in later conversations.

        Use it when the user asks you to remember something, or tells you a durable fact about
        themselves (a name, a preference, an important date, a plan).

        Args:
            fact: the fact as one short self-contained sentence, such as
                "The user's daughter Mia is allergic to peanuts."
        """
        record = await asyncio.to_thread(memories.add, user_id, fact, "tool")
        return f"Saved to memory: {record.text}"

    return remember
