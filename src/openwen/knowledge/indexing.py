"""Embedding chunks in their context, and keeping the index right as a library grows.

- :meth:`Indexer.embed` embeds each chunk as its document title, heading path and text less the
  user's boilerplate (:mod:`openwen.knowledge.boilerplate`).
- A block becomes boilerplate when the ``COMMON_DOCUMENTS``-th document holding it arrives; the
  documents added before it were embedded with it, so :meth:`Indexer.refresh` embeds their
  chunks again (new vectors replace old ones in one transaction).
- :meth:`Indexer.reindex` rebuilds documents indexed by an older openwen (``index_version``
  below :data:`~openwen.knowledge.chunking.INDEX_VERSION`) from their stored text: sections
  from the old chunks' headings and offsets, chunked and embedded anew; each document's old
  chunks are replaced in the same transaction that stores its new ones, so an interrupted
  reindex loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from openwen.knowledge.boilerplate import common, document_title, embedding_text, fingerprints
from openwen.knowledge.chunking import INDEX_VERSION, Chunk, chunk_sections
from openwen.knowledge.documents import DocumentStore, bump_version
from openwen.knowledge.embedder import TextEmbedder, to_blob
from openwen.knowledge.parse import Section
from openwen.knowledge.records import ALL, DocumentRecord, Scope
from openwen.knowledge.settings import KnowledgeSettings
from openwen.knowledge.vectors import PGVECTOR_TABLE, pgvector_enabled, pgvector_insert
from openwen.storage.knowledge_models import KnowledgeChunk, KnowledgeDocument

Progress = Callable[[str, int, int], None]
Prints = dict[str, list[str]]  # document id -> block fingerprints


class Indexer:
    def __init__(self, store: DocumentStore, embedder: TextEmbedder,
                 settings: KnowledgeSettings):
        self.store = store
        self.embedder = embedder
        self.settings = settings

    # -- embedding ----------------------------------------------------------------------------

    def others(self, user_id: int, exclude: str | None = None) -> Prints:
        """The block fingerprints of the user's documents (but ``exclude``)."""
        with self.store.db.read() as s:
            rows = s.execute(select(KnowledgeDocument.id, KnowledgeDocument.meta)
                             .where(KnowledgeDocument.user_id == user_id))
            return {doc: list((meta or {}).get("fingerprints") or []) for doc, meta in rows
                    if doc != exclude}

    def embed(self, chunks: Sequence[Chunk], title: str | None, boilerplate: set[str],
              progress: Progress | None = None) -> np.ndarray:
        texts = [embedding_text(c.text, title=title, section=c.section, boilerplate=boilerplate)
                 for c in chunks]
        return self._embed_texts(texts, progress)

    def _embed_texts(self, texts: list[str], progress: Progress | None = None) -> np.ndarray:
        batch = self.settings.embed_batch
        parts = []
        for start in range(0, len(texts), batch):
            parts.append(self.embedder.embed(texts[start:start + batch]))
            if progress:
                progress("embed", min(start + batch, len(texts)), len(texts))
        return np.vstack(parts)

    # -- boilerplate that appeared later -------------------------------------------------------

    def refresh(self, user_id: int, prints: list[str], others: Prints) -> int:
        """Embed again the chunks of ``others`` holding a block that ``prints`` (a new
        document's) just made boilerplate. Returns how many chunks were embedded again."""
        before = common(others.values())
        after = common([*others.values(), prints])
        crossed = after - before
        affected = [doc for doc, theirs in others.items() if crossed & set(theirs)]
        if not affected:
            return 0
        with self.store.db.read() as s:
            rows = s.execute(
                select(KnowledgeChunk.id, KnowledgeChunk.text, KnowledgeChunk.section,
                       KnowledgeDocument.filename, KnowledgeDocument.meta)
                .join(KnowledgeDocument, KnowledgeDocument.id == KnowledgeChunk.document_id)
                .where(KnowledgeChunk.document_id.in_(affected),
                       KnowledgeDocument.embedding_model == self.embedder.name)
                .order_by(KnowledgeChunk.id)).all()
        if not rows:
            return 0
        texts = [embedding_text(t, title=document_title(name, meta), section=section,
                                boilerplate=after) for _, t, section, name, meta in rows]
        vectors = self._embed_texts(texts)
        with self.store.db.write() as s:
            _replace_vectors(s, user_id, [(r[0], v) for r, v in zip(rows, vectors, strict=True)])
            bump_version(s, user_id, "chunks")
        return len(rows)

    # -- reindex ------------------------------------------------------------------------------

    def stale(self, user_id: int, scope: Scope = ALL) -> list[DocumentRecord]:
        """Documents indexed by an older openwen or with another embedding model than the
        current one (invisible to vector search until reindexed)."""
        return [d for d in self.store.all(user_id, scope)
                if d.needs_reindex or d.embedding_model != self.embedder.name]

    def reindex(self, user_id: int, scope: Scope = ALL, *, everything: bool = False,
                progress: Callable[[DocumentRecord, int, int], None] | None = None,
                ) -> list[DocumentRecord]:
        """Rebuild the documents of ``scope`` that need it (all of them with ``everything``),
        one transaction per document. Returns the documents rebuilt."""
        todo = self.store.all(user_id, scope) if everything else self.stale(user_id, scope)
        done = []
        for n, doc in enumerate(todo, 1):
            self._reindex_one(user_id, doc.id)
            done.append(doc)
            if progress:
                progress(doc, n, len(todo))
        return done

    def _reindex_one(self, user_id: int, document_id: str) -> None:
        with self.store.db.read() as s:
            doc = s.get(KnowledgeDocument, document_id)
            if doc is None or doc.user_id != user_id:
                return
            sections = _stored_sections(s, doc)
            title = document_title(doc.filename, doc.meta)
            meta = dict(doc.meta or {})
        content, chunks = chunk_sections(sections, max_chars=self.settings.chunk_chars,
                                         overlap=self.settings.chunk_overlap)
        if not chunks:
            return
        prints = fingerprints(s.text for s in sections)
        others = self.others(user_id, exclude=document_id)
        vectors = self.embed(chunks, title, common([*others.values(), prints]))
        meta["fingerprints"] = prints
        with self.store.db.write() as s:
            doc = s.get(KnowledgeDocument, document_id)
            if doc is None:  # removed meanwhile
                return
            s.execute(delete(KnowledgeChunk).where(KnowledgeChunk.document_id == document_id))
            rows = self.store.add_chunks(s, user_id, document_id, chunks, vectors, title)
            if pgvector_enabled(s):
                pgvector_insert(s, user_id, [(r.id, v) for r, v in zip(rows, vectors,
                                                                        strict=True)])
            doc.content = content
            doc.meta = meta
            doc.index_version = INDEX_VERSION
            doc.embedding_model = self.embedder.name
            bump_version(s, user_id, "chunks")
        self.refresh(user_id, prints, others)


def _stored_sections(s: Session, doc: KnowledgeDocument) -> list[Section]:
    """A document's sections, rebuilt from its text and its chunks' headings and offsets
    (consecutive chunks of one heading and page are one section)."""
    rows = s.execute(select(KnowledgeChunk.section, KnowledgeChunk.page,
                            KnowledgeChunk.char_start, KnowledgeChunk.char_end)
                     .where(KnowledgeChunk.document_id == doc.id)
                     .order_by(KnowledgeChunk.ordinal)).all()
    spans: list[list[Any]] = []
    for section, page, start, end in rows:
        if spans and spans[-1][0] == section and spans[-1][1] == page:
            spans[-1][3] = max(spans[-1][3], end)
        else:
            spans.append([section, page, start, end])
    content = doc.content
    if not spans or spans[-1][3] <= 0:  # chunks without offsets: the text as one section
        return [Section(content)] if content.strip() else []
    return [Section(content[start:end], page=page, heading=section)
            for section, page, start, end in spans if content[start:end].strip()]


def _replace_vectors(s: Session, user_id: int, items: list[tuple[int, np.ndarray]]) -> None:
    s.execute(update(KnowledgeChunk), [{"id": cid, "embedding": to_blob(v)} for cid, v in items])
    if pgvector_enabled(s):
        s.execute(text(f"DELETE FROM {PGVECTOR_TABLE} WHERE chunk_id = :cid"),
                  [{"cid": cid} for cid, _ in items])
        pgvector_insert(s, user_id, items)
