"""``KnowledgeBase``: documents, retrieval and memory over one database and one embedder.

    kb = KnowledgeBase(storage.db, LocalEmbedder.minilm(), KnowledgeSettings.from_settings(s))
    kb.add_file(user.id, Path("lease.pdf"), Scope(collection="home"))
    kb.search(user.id, "are pets allowed", Scope(collection="home"))
    kb.build_context(user.id, "can I get a cat?", collection="home")   # late-prompt block

Methods are blocking (they parse, embed and query); the ``a``-prefixed ones run them in a worker
thread for async callers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openwen.knowledge.context import WHOLE_DOCUMENT_CAP, Citation, ContextMode, KnowledgeContext
from openwen.knowledge.documents import EMPTY_SCOPE, DocumentStore
from openwen.knowledge.embedder import TextEmbedder
from openwen.knowledge.ingest import Ingester, Progress
from openwen.knowledge.memory import MemoryStore, detect_remember, make_remember_tool
from openwen.knowledge.records import (
    ALL,
    AddResult,
    DocumentRecord,
    MemoryRecord,
    Passage,
    Scope,
    SearchMode,
)
from openwen.knowledge.retrieval import Retriever
from openwen.knowledge.settings import KnowledgeSettings
from openwen.knowledge.vectors import MatrixCache
from openwen.storage.db import Database
from openwen.storage.users import UserSettingsRepo

if TYPE_CHECKING:
    from openwen.chat.service import ChatService

MEMORY_ENABLED = "memory.enabled"
MEMORY_AUTO_EXTRACT = "memory.auto_extract"


class KnowledgeBase:
    def __init__(self, db: Database, embedder: TextEmbedder,
                 settings: KnowledgeSettings | None = None, *, cache: MatrixCache | None = None):
        self.db = db
        self.embedder = embedder
        self.settings = settings or KnowledgeSettings()
        self.cache = cache or MatrixCache()
        self.documents = DocumentStore(db)
        self.retriever = Retriever(self.documents, embedder, self.cache, self.settings)
        self.memories = MemoryStore(db, embedder, self.cache, self.settings)
        self.ingester = Ingester(self.documents, embedder, self.settings)
        self.user_settings = UserSettingsRepo(db)

    # -- documents ----------------------------------------------------------------------------

    def add_file(self, user_id: int, path: Path, scope: Scope = ALL, *,
                 filename: str | None = None, source: str | None = None,
                 progress: Progress | None = None) -> AddResult:
        return self.ingester.add_file(user_id, path, scope, filename=filename, source=source,
                                      progress=progress)

    def stale_documents(self, user_id: int, scope: Scope = ALL) -> list[DocumentRecord]:
        """Documents that ``reindex`` would rebuild (older index, other embedding model)."""
        return self.ingester.indexer.stale(user_id, scope)

    def reindex(self, user_id: int, scope: Scope = ALL, *, everything: bool = False,
                progress: Callable[[DocumentRecord, int, int], None] | None = None,
                ) -> list[DocumentRecord]:
        """Rebuild the scope's stale documents (all with ``everything``), one transaction per
        document: until a document's new chunks are stored, its old ones serve searches."""
        return self.ingester.indexer.reindex(user_id, scope, everything=everything,
                                             progress=progress)

    def list_documents(self, user_id: int, scope: Scope = ALL) -> list[DocumentRecord]:
        return self.documents.all(user_id, scope)

    def remove_document(self, user_id: int, document_id: str) -> DocumentRecord:
        return self.documents.delete(user_id, document_id)

    def find_documents(self, user_id: int, name_or_id: str) -> list[DocumentRecord]:
        """Documents whose id, id prefix (8+ characters) or file name is ``name_or_id``."""
        found = []
        for doc in self.documents.all(user_id):
            if name_or_id in (doc.id, doc.filename) or (
                    len(name_or_id) >= 8 and doc.id.startswith(name_or_id)):
                found.append(doc)
        return found

    def search(self, user_id: int, query: str, scope: Scope = ALL, *, limit: int = 5,
               mode: SearchMode = "hybrid") -> list[Passage]:
        return self.retriever.search(user_id, query, scope, limit=limit, mode=mode)

    # -- context for the chat flow ------------------------------------------------------------

    def context(self, user_id: int, query: str, *, collection: str | None = None,
                conversation_id: str | None = None, mode: ContextMode = "auto",
                limit: int | None = None, memories: bool = True) -> KnowledgeContext:
        """Recalled memories and, when a collection or conversation is given, its sources:
        whole documents when their text fits ``whole_document_chars`` (``mode="auto"``) or
        ``mode="whole"``; else the top passages."""
        recalled = (self.memories.recall(user_id, query)
                    if memories and self.memory_enabled(user_id) else [])
        scope = Scope(collection, conversation_id)
        if scope.everything:
            return KnowledgeContext(recalled, [], "none")
        count, chars = self.documents.scope_size(user_id, scope)
        if count == 0:
            return KnowledgeContext(recalled, [], "none")
        whole = mode == "whole" or (mode == "auto" and chars <= self.settings.whole_document_chars)
        if whole:
            return KnowledgeContext(recalled, self._whole(user_id, scope), "whole")
        passages = self.search(user_id, query, scope, limit=limit or self.settings.top_k)
        citations = [Citation.of_passage(n, p) for n, p in enumerate(passages, 1)]
        return KnowledgeContext(recalled, citations, "chunks" if citations else "none")

    def _whole(self, user_id: int, scope: Scope) -> list[Citation]:
        citations: list[Citation] = []
        budget = WHOLE_DOCUMENT_CAP
        for document, content in self.documents.contents(user_id, scope):
            if budget <= 0:
                break
            citations.append(Citation.of_document(len(citations) + 1, document,
                                                  content[:budget]))
            budget -= len(content)
        return citations

    def build_context(self, user_id: int, query: str, *, collection: str | None = None,
                      conversation_id: str | None = None) -> str:
        """The text to insert LATE in the prompt (after the history, before the new user
        message); "" when there is nothing relevant."""
        return self.context(user_id, query, collection=collection,
                            conversation_id=conversation_id).text

    async def acontext(self, user_id: int, query: str, **kwargs: Any) -> KnowledgeContext:
        return await asyncio.to_thread(lambda: self.context(user_id, query, **kwargs))

    async def abuild_context(self, user_id: int, query: str, *, collection: str | None = None,
                             conversation_id: str | None = None) -> str:
        return (await self.acontext(user_id, query, collection=collection,
                                    conversation_id=conversation_id)).text

    # -- memory -------------------------------------------------------------------------------

    def memory_enabled(self, user_id: int) -> bool:
        return bool(self.user_settings.get(user_id, MEMORY_ENABLED, True))

    def auto_extract_enabled(self, user_id: int) -> bool:
        default = self.settings.memory_auto_extract
        return bool(self.user_settings.get(user_id, MEMORY_AUTO_EXTRACT, default))

    def memory_settings(self, user_id: int) -> dict[str, bool]:
        return {"enabled": self.memory_enabled(user_id),
                "auto_extract": self.auto_extract_enabled(user_id)}

    def set_memory_settings(self, user_id: int, *, enabled: bool | None = None,
                            auto_extract: bool | None = None) -> dict[str, bool]:
        if enabled is not None:
            self.user_settings.set(user_id, MEMORY_ENABLED, bool(enabled))
        if auto_extract is not None:
            self.user_settings.set(user_id, MEMORY_AUTO_EXTRACT, bool(auto_extract))
        return self.memory_settings(user_id)

    def remember_from_message(self, user_id: int, message: str) -> MemoryRecord | None:
        """Store the fact of an explicit "remember that ..." message (None otherwise, or when
        the user switched memory off)."""
        fact = detect_remember(message)
        if fact is None or not self.memory_enabled(user_id):
            return None
        return self.memories.add(user_id, fact, source="chat")

    async def extract_memories(self, service: ChatService, user_id: int, message: str, *,
                               model: str | None = None) -> list[MemoryRecord]:
        """Automatic extraction (only when switched on for this user): the model lists facts
        in ``message``; each is stored. Run it after the answer, off the critical path."""
        if not await asyncio.to_thread(
                lambda: self.memory_enabled(user_id) and self.auto_extract_enabled(user_id)):
            return []
        from openwen.knowledge.extract import extract_facts

        facts = await extract_facts(service, message, model=model)
        return [await asyncio.to_thread(self.memories.add, user_id, f, "extracted")
                for f in facts]

    def remember_tool(self, user_id: int) -> Callable[[str], Awaitable[str]]:
        return make_remember_tool(self.memories, user_id)


__all__ = ["EMPTY_SCOPE", "KnowledgeBase"]
