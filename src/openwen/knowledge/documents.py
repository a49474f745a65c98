"""Documents, chunks and collections in the database, always through the acting user.

Every method takes ``user_id``; another user's document, collection or conversation is reported
exactly like a missing one. Adding a document is one transaction (document, chunks, vectors,
collection links, version bump), so a failure leaves nothing half-indexed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from openwen.errors import InvalidRequestError, NotFoundError
from openwen.knowledge.boilerplate import context_line, document_title
from openwen.knowledge.chunking import INDEX_VERSION, Chunk
from openwen.knowledge.embedder import to_blob
from openwen.knowledge.fulltext import search_text
from openwen.knowledge.records import ALL, CollectionRecord, DocumentRecord, Passage, Scope
from openwen.knowledge.vectors import pgvector_enabled, pgvector_insert
from openwen.storage.base import clean_text, owned_conversation, plain_json
from openwen.storage.db import Database
from openwen.storage.knowledge_models import (
    KnowledgeChunk,
    KnowledgeCollection,
    KnowledgeDocument,
    KnowledgeMembership,
    KnowledgeVersion,
)
from openwen.storage.models import utcnow

MAX_COLLECTION_NAME = 100
EMPTY_SCOPE = -1  # a scope that holds no documents (a conversation with none attached)


def document_not_found(document_id: object) -> NotFoundError:
    return NotFoundError(f"document {document_id!r} not found", param="document_id")


def collection_not_found(name: object) -> NotFoundError:
    return NotFoundError(f"collection {name!r} not found", param="collection")


def check_collection_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequestError("a collection name is not empty", param="collection")
    name = " ".join(name.split())
    if len(name) > MAX_COLLECTION_NAME or any(ord(c) < 32 for c in name):
        raise InvalidRequestError(f"a collection name is at most {MAX_COLLECTION_NAME} "
                                  "printable characters", param="collection")
    return name


def bump_version(session: Session, user_id: int, field: str) -> None:
    """Mark the user's chunks or memories changed (cached matrices reload)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    first = {"chunks": 0, "memories": 0, field: 1}
    stmt = dialect.insert(KnowledgeVersion).values(user_id=user_id, **first)
    column = getattr(KnowledgeVersion, field)
    stmt = stmt.on_conflict_do_update(index_elements=["user_id"], set_={field: column + 1})
    session.execute(stmt)


def read_version(session: Session, user_id: int, field: str) -> int:
    value = session.scalar(select(getattr(KnowledgeVersion, field))
                           .where(KnowledgeVersion.user_id == user_id))
    return int(value or 0)


@dataclass(frozen=True)
class NewDocument:
    filename: str
    kind: str
    sha256: str
    size_bytes: int
    pages: int | None
    content: str
    embedding_model: str
    source: str | None = None
    meta: dict[str, Any] | None = None
    title: str | None = None  # context of every chunk (search text); default: from meta/name


class DocumentStore:
    def __init__(self, db: Database):
        self.db = db

    # -- scopes -------------------------------------------------------------------------------

    def collection_id(self, s: Session, user_id: int, scope: Scope, *,
                      create: bool = False) -> int | None:
        """The collection row of ``scope``; None for "all documents", ``EMPTY_SCOPE`` when a
        conversation has no documents yet (and ``create`` is off)."""
        if scope.conversation_id is not None:
            owned_conversation(s, user_id, scope.conversation_id)
            found = s.scalar(select(KnowledgeCollection.id).where(
                KnowledgeCollection.conversation_id == str(scope.conversation_id)))
            if found is None and create:
                row = KnowledgeCollection(user_id=user_id, conversation_id=scope.conversation_id)
                s.add(row)
                s.flush()
                return row.id
            return EMPTY_SCOPE if found is None else found
        if scope.collection is None:
            return None
        name = check_collection_name(scope.collection)
        found = s.scalar(select(KnowledgeCollection.id).where(
            KnowledgeCollection.user_id == user_id, KnowledgeCollection.name == name))
        if found is None:
            if not create:
                raise collection_not_found(name)
            row = KnowledgeCollection(user_id=user_id, name=name)
            s.add(row)
            s.flush()
            return row.id
        return found

    def check_scope(self, user_id: int, scope: Scope) -> None:
        """Fail early on a bad collection name or someone else's conversation."""
        if scope.collection is not None:
            check_collection_name(scope.collection)
        if scope.conversation_id is not None:
            with self.db.read() as s:
                owned_conversation(s, user_id, scope.conversation_id)

    def scope_filter(self, s: Session, user_id: int,
                     scope: Scope) -> tuple[str, dict[str, Any], set[str] | None]:
        """SQL on chunk ``c`` limiting it to the scope, its binds, and the document ids (None:
        every document of the user)."""
        cid = self.collection_id(s, user_id, scope)
        if cid is None:
            return "", {}, None
        ids = set(s.scalars(select(KnowledgeMembership.document_id)
                            .where(KnowledgeMembership.collection_id == cid)))
        sql = ("AND c.document_id IN (SELECT m.document_id FROM knowledge_memberships m "
               "WHERE m.collection_id = :scope_collection)")
        return sql, {"scope_collection": cid}, ids

    # -- documents ----------------------------------------------------------------------------

    def find(self, user_id: int, sha256: str) -> DocumentRecord | None:
        with self.db.read() as s:
            row = s.scalar(select(KnowledgeDocument).where(
                KnowledgeDocument.user_id == user_id, KnowledgeDocument.sha256 == sha256))
            return None if row is None else self._records(s, [row])[0]

    def insert(self, user_id: int, new: NewDocument, chunks: Sequence[Chunk],
               vectors: np.ndarray, scope: Scope) -> tuple[DocumentRecord, str | None]:
        """Store a document with its chunks; the older version from the same source (if any)
        is removed and its collection links carried over. Returns (record, replaced id)."""
        if len(chunks) != len(vectors):
            raise ValueError("one vector per chunk")
        with self.db.write() as s:
            cid = self.collection_id(s, user_id, scope, create=True)
            old = self._same_source(s, user_id, new.source)
            links = set(s.scalars(select(KnowledgeMembership.collection_id).where(
                KnowledgeMembership.document_id == old.id))) if old else set()
            if old is not None:
                s.delete(old)
                s.flush()
            doc = self._add_document(s, user_id, new)
            title = new.title or document_title(new.filename, new.meta)
            rows = self.add_chunks(s, user_id, doc.id, chunks, vectors, title)
            if pgvector_enabled(s):
                pgvector_insert(s, user_id, [(r.id, v) for r, v in zip(rows, vectors,
                                                                        strict=True)])
            for collection in links | ({cid} if cid is not None else set()):
                s.add(KnowledgeMembership(collection_id=collection, document_id=doc.id))
            bump_version(s, user_id, "chunks")
            s.flush()
            return self._records(s, [doc])[0], (old.id if old else None)

    def _same_source(self, s: Session, user_id: int,
                     source: str | None) -> KnowledgeDocument | None:
        if source is None:
            return None
        return s.scalars(select(KnowledgeDocument).where(
            KnowledgeDocument.user_id == user_id, KnowledgeDocument.source == source)
            .order_by(KnowledgeDocument.created_at.desc())).first()

    def _add_document(self, s: Session, user_id: int, new: NewDocument) -> KnowledgeDocument:
        doc = KnowledgeDocument(
            id=str(uuid.uuid4()), user_id=user_id, filename=clean_text(new.filename)[:255],
            source=clean_text(new.source) if new.source else None, kind=new.kind,
            sha256=new.sha256, size_bytes=new.size_bytes, pages=new.pages,
            content=clean_text(new.content), embedding_model=new.embedding_model,
            meta=plain_json(new.meta or {}), created_at=utcnow(), index_version=INDEX_VERSION)
        s.add(doc)
        try:
            s.flush()
        except IntegrityError as exc:  # the same file was added meanwhile
            raise InvalidRequestError(f"{new.filename}: this file is already being added",
                                      code="duplicate_document") from exc
        return doc

    @staticmethod
    def add_chunks(s: Session, user_id: int, document_id: str, chunks: Sequence[Chunk],
                    vectors: np.ndarray, title: str | None) -> list[KnowledgeChunk]:
        rows = [KnowledgeChunk(document_id=document_id, user_id=user_id, ordinal=i,
                               page=c.page, section=clean_text(c.section) if c.section else None,
                               char_start=c.start, char_end=c.end, text=clean_text(c.text),
                               embedding=to_blob(v), search_text=clean_text(search_text(
                                   context_line(title, c.section), c.text)))
                for i, (c, v) in enumerate(zip(chunks, vectors, strict=True))]
        s.add_all(rows)
        s.flush()
        return rows

    def attach(self, user_id: int, document_id: str, scope: Scope) -> bool:
        """Link a document to a collection or conversation; False when it already was."""
        if scope.everything:
            return False
        with self.db.write() as s:
            self._owned(s, user_id, document_id)
            cid = self.collection_id(s, user_id, scope, create=True)
            if s.get(KnowledgeMembership, (cid, document_id)) is not None:
                return False
            s.add(KnowledgeMembership(collection_id=cid, document_id=document_id))
            return True

    def detach(self, user_id: int, document_id: str, scope: Scope) -> bool:
        with self.db.write() as s:
            self._owned(s, user_id, document_id)
            cid = self.collection_id(s, user_id, scope)
            if cid is None or cid == EMPTY_SCOPE:
                return False
            result = s.execute(delete(KnowledgeMembership).where(
                KnowledgeMembership.collection_id == cid,
                KnowledgeMembership.document_id == document_id))
            return bool(getattr(result, "rowcount", 0))

    def get(self, user_id: int, document_id: str) -> DocumentRecord:
        with self.db.read() as s:
            return self._records(s, [self._owned(s, user_id, document_id)])[0]

    def content(self, user_id: int, document_id: str) -> tuple[DocumentRecord, str]:
        with self.db.read() as s:
            row = self._owned(s, user_id, document_id)
            return self._records(s, [row])[0], row.content

    def all(self, user_id: int, scope: Scope = ALL) -> list[DocumentRecord]:
        with self.db.read() as s:
            query = select(KnowledgeDocument).where(KnowledgeDocument.user_id == user_id)
            cid = self.collection_id(s, user_id, scope)
            if cid is not None:
                query = query.join(KnowledgeMembership,
                                   KnowledgeMembership.document_id == KnowledgeDocument.id
                                   ).where(KnowledgeMembership.collection_id == cid)
            rows = list(s.scalars(query.order_by(KnowledgeDocument.created_at,
                                                 KnowledgeDocument.id)))
            return self._records(s, rows)

    def delete(self, user_id: int, document_id: str) -> DocumentRecord:
        with self.db.write() as s:
            row = self._owned(s, user_id, document_id)
            record = self._records(s, [row])[0]
            s.delete(row)
            bump_version(s, user_id, "chunks")
            return record

    def _owned(self, s: Session, user_id: int, document_id: str) -> KnowledgeDocument:
        row = s.scalar(select(KnowledgeDocument).where(
            KnowledgeDocument.id == str(document_id), KnowledgeDocument.user_id == user_id))
        if row is None:
            raise document_not_found(document_id)
        return row

    def _records(self, s: Session, rows: list[KnowledgeDocument]) -> list[DocumentRecord]:
        ids = [r.id for r in rows]
        if not ids:
            return []
        counts = dict(s.execute(select(KnowledgeChunk.document_id, func.count())
                                .where(KnowledgeChunk.document_id.in_(ids))
                                .group_by(KnowledgeChunk.document_id)).all())
        names: dict[str, list[str]] = {i: [] for i in ids}
        conversations: dict[str, list[str]] = {i: [] for i in ids}
        links = s.execute(select(KnowledgeMembership.document_id, KnowledgeCollection.name,
                                 KnowledgeCollection.conversation_id)
                          .join(KnowledgeCollection,
                                KnowledgeCollection.id == KnowledgeMembership.collection_id)
                          .where(KnowledgeMembership.document_id.in_(ids)))
        for doc_id, name, conversation in links:
            if name is not None:
                names[doc_id].append(name)
            elif conversation is not None:
                conversations[doc_id].append(conversation)
        return [DocumentRecord(
            id=r.id, filename=r.filename, kind=r.kind, sha256=r.sha256, size_bytes=r.size_bytes,
            pages=r.pages, chunks=int(counts.get(r.id, 0)), chars=len(r.content),
            collections=tuple(sorted(names[r.id])), conversations=tuple(conversations[r.id]),
            created_at=r.created_at, source=r.source, embedding_model=r.embedding_model,
            needs_reindex=(r.index_version or 1) < INDEX_VERSION) for r in rows]

    def contents(self, user_id: int, scope: Scope) -> list[tuple[DocumentRecord, str]]:
        """Every document of the scope with its full text (for whole-document mode)."""
        with self.db.read() as s:
            query = select(KnowledgeDocument).where(KnowledgeDocument.user_id == user_id)
            cid = self.collection_id(s, user_id, scope)
            if cid is not None:
                query = query.join(KnowledgeMembership,
                                   KnowledgeMembership.document_id == KnowledgeDocument.id
                                   ).where(KnowledgeMembership.collection_id == cid)
            rows = list(s.scalars(query.order_by(KnowledgeDocument.created_at)))
            return list(zip(self._records(s, rows), [r.content for r in rows], strict=True))

    def scope_size(self, user_id: int, scope: Scope) -> tuple[int, int]:
        """(documents, characters of text) in the scope."""
        with self.db.read() as s:
            query = select(func.count(), func.coalesce(func.sum(func.length(
                KnowledgeDocument.content)), 0)).where(KnowledgeDocument.user_id == user_id)
            cid = self.collection_id(s, user_id, scope)
            if cid is not None:
                query = query.join(KnowledgeMembership,
                                   KnowledgeMembership.document_id == KnowledgeDocument.id
                                   ).where(KnowledgeMembership.collection_id == cid)
            count, chars = s.execute(query).one()
            return int(count), int(chars)

    # -- chunks -------------------------------------------------------------------------------

    def passages(self, s: Session, user_id: int, ids: list[int]) -> dict[int, Passage]:
        if not ids:
            return {}
        rows = s.execute(select(KnowledgeChunk, KnowledgeDocument.filename)
                         .join(KnowledgeDocument,
                               KnowledgeDocument.id == KnowledgeChunk.document_id)
                         .where(KnowledgeChunk.id.in_(ids), KnowledgeChunk.user_id == user_id))
        return {c.id: Passage(chunk_id=c.id, document_id=c.document_id, filename=name,
                              page=c.page, section=c.section, text=c.text, score=0.0,
                              char_start=c.char_start, char_end=c.char_end)
                for c, name in rows}

    def passage(self, user_id: int, chunk_id: int) -> Passage:
        with self.db.read() as s:
            found = self.passages(s, user_id, [chunk_id]) if isinstance(chunk_id, int) else {}
        if chunk_id not in found:
            raise NotFoundError(f"passage {chunk_id!r} not found", param="chunk_id")
        return found[chunk_id]

    # -- collections --------------------------------------------------------------------------

    def collections(self, user_id: int) -> list[CollectionRecord]:
        with self.db.read() as s:
            rows = s.execute(
                select(KnowledgeCollection.name, KnowledgeCollection.created_at,
                       func.count(KnowledgeMembership.document_id))
                .outerjoin(KnowledgeMembership,
                           KnowledgeMembership.collection_id == KnowledgeCollection.id)
                .where(KnowledgeCollection.user_id == user_id,
                       KnowledgeCollection.name.is_not(None))
                .group_by(KnowledgeCollection.id, KnowledgeCollection.name,
                          KnowledgeCollection.created_at)
                .order_by(KnowledgeCollection.name))
            return [CollectionRecord(str(name), int(n), created) for name, created, n in rows]

    def create_collection(self, user_id: int, name: str) -> CollectionRecord:
        with self.db.write() as s:
            name = check_collection_name(name)
            self.collection_id(s, user_id, Scope(collection=name), create=True)
        return next(c for c in self.collections(user_id) if c.name == name)

    def rename_collection(self, user_id: int, name: str, new_name: str) -> None:
        with self.db.write() as s:
            cid = self.collection_id(s, user_id, Scope(collection=name))
            new_name = check_collection_name(new_name)
            taken = s.scalar(select(KnowledgeCollection.id).where(
                KnowledgeCollection.user_id == user_id, KnowledgeCollection.name == new_name))
            if taken is not None and taken != cid:
                raise InvalidRequestError(f"a collection named {new_name!r} exists",
                                          param="name", code="collection_exists")
            s.execute(update(KnowledgeCollection).where(KnowledgeCollection.id == cid)
                      .values(name=new_name))

    def delete_collection(self, user_id: int, name: str) -> None:
        """Remove a collection; its documents stay (in the user's other collections, or none)."""
        with self.db.write() as s:
            cid = self.collection_id(s, user_id, Scope(collection=name))
            s.execute(delete(KnowledgeCollection).where(KnowledgeCollection.id == cid))
