"""Adding a file: check, hash, parse, chunk, embed (in batches), then store in one transaction.

Chunks are embedded in their context (title, heading path) without the user's boilerplate; a
block this document makes boilerplate has the older documents holding it embedded again
(:mod:`openwen.knowledge.indexing`). Parsing and chunking share one time budget
(``parse_seconds``).

Checks come before any reading: a missing or empty file, one over ``document_max_bytes``
(judged by its size on disk, never by reading it) and an unsupported type are refused at once.
An unchanged file (same sha256 for this user) is not parsed again: it is only linked to the
requested collection or conversation. Embeddings are all computed before the insert, so an error
anywhere leaves nothing behind.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from openwen.knowledge.boilerplate import common, document_title, fingerprints
from openwen.knowledge.chunking import chunk_sections
from openwen.knowledge.documents import DocumentStore, NewDocument
from openwen.knowledge.embedder import TextEmbedder
from openwen.knowledge.errors import Deadline, DocumentError, DocumentTooLargeError
from openwen.knowledge.indexing import Indexer
from openwen.knowledge.parse import kind_of, parse_file
from openwen.knowledge.records import ALL, AddResult, Scope
from openwen.knowledge.settings import KnowledgeSettings

Progress = Callable[[str, int, int], None]  # (stage: "parse" | "embed", done, total)
HASH_BLOCK = 1024 * 1024


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def check_file(path: Path, label: str, limits: KnowledgeSettings) -> int:
    """The file's size, after the checks that need no reading."""
    if not path.exists():
        raise DocumentError(f"{label}: no such file", param="file")
    if not path.is_file():
        raise DocumentError(f"{label}: not a regular file", param="file")
    size = path.stat().st_size
    if size == 0:
        raise DocumentError(f"{label}: the file is empty (0 bytes)", param="file")
    if size > limits.document_max_bytes:
        raise DocumentTooLargeError(
            f"{label}: the file is {_mb(size)}, more than the limit of "
            f"{_mb(limits.document_max_bytes)} (setting document_max_bytes)", param="file")
    return size


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


class Ingester:
    def __init__(self, store: DocumentStore, embedder: TextEmbedder,
                 settings: KnowledgeSettings):
        self.store = store
        self.embedder = embedder
        self.settings = settings
        self.indexer = Indexer(store, embedder, settings)

    def add_file(self, user_id: int, path: Path, scope: Scope = ALL, *,
                 filename: str | None = None, source: str | None = None,
                 progress: Progress | None = None) -> AddResult:
        """Index ``path`` for ``user_id``. Blocking: parsing and embedding take a while, so
        servers call it from a worker thread. ``filename`` is the name shown in citations
        (default: the path's name); ``source`` identifies where it came from (default: the
        absolute path), so that a changed file from the same source replaces the old one."""
        path = Path(path)
        name = Path(filename or path.name).name or "document"
        kind = kind_of(name)
        size = check_file(path, name, self.settings)
        self.store.check_scope(user_id, scope)
        sha256 = file_sha256(path)
        existing = self.store.find(user_id, sha256)
        if existing is not None:
            if self.store.attach(user_id, existing.id, scope):
                existing = self.store.get(user_id, existing.id)
            return AddResult(existing, created=False)
        if progress:
            progress("parse", 0, 1)
        deadline = Deadline(self.settings.parse_seconds, name)
        parsed = parse_file(path, kind, self.settings, name=name, deadline=deadline)
        content, chunks = chunk_sections(parsed.sections, max_chars=self.settings.chunk_chars,
                                         overlap=self.settings.chunk_overlap, deadline=deadline)
        if not chunks:
            raise DocumentError(f"{name}: no text found", param="file")
        if progress:
            progress("parse", 1, 1)
        prints = fingerprints(s.text for s in parsed.sections)
        others = self.indexer.others(user_id)
        meta: dict[str, Any] = {"title": parsed.title} if parsed.title else {}
        title = document_title(name, meta)
        vectors = self.indexer.embed(chunks, title, common([*others.values(), prints]),
                                     progress)
        new = NewDocument(filename=name, kind=kind, sha256=sha256, size_bytes=size,
                          pages=parsed.pages, content=content,
                          embedding_model=self.embedder.name,
                          source=source or str(path.resolve()),
                          meta={**meta, "fingerprints": prints}, title=title)
        record, replaced = self.store.insert(user_id, new, chunks, vectors, scope)
        if replaced:
            others.pop(replaced, None)
        self.indexer.refresh(user_id, prints, others)
        return AddResult(record, created=True, replaced=replaced)
