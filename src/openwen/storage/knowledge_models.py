"""ORM models of documents (RAG) and long-term memory; mirrored by migration ``0100_knowledge``.

- ``knowledge_documents``: one parsed file of one user (full extracted text kept for
  whole-document mode and citation links); unique per user by the file's sha256.
- ``knowledge_chunks``: passages of a document with their source (page, section heading,
  character offsets into the document's text) and a float32 embedding (``LargeBinary``).
  Chunks never change once written; ids are never reused (``AUTOINCREMENT`` on SQLite).
- ``knowledge_collections``: a named collection, or the set of documents attached to one
  conversation (``conversation_id`` set, ``name`` empty); ``knowledge_memberships``
  links them to documents.
- ``memories``: facts about a user, with an embedding.
- ``knowledge_versions``: per-user change counters, bumped in the same transaction as any change
  of chunks or memories, so in-memory vector matrices know when they are stale (also across
  several app instances).

Full-text indexes (SQLite FTS5 tables + triggers, PostgreSQL GIN indexes) and the optional
pgvector table live in the migrations only (``0100_knowledge``, ``0130_chinese_fulltext``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from openwen.storage.models import Base, utcnow

__all__ = [
    "KnowledgeChunk",
    "KnowledgeCollection",
    "KnowledgeDocument",
    "KnowledgeMembership",
    "KnowledgeVersion",
    "Memory",
]


class KnowledgeCollection(Base):
    __tablename__ = "knowledge_collections"
    __table_args__ = (
        UniqueConstraint("user_id", "name", name="uq_knowledge_collections_user_name"),
        UniqueConstraint("conversation_id", name="uq_knowledge_collections_conversation_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(100))
    conversation_id: Mapped[str | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class KnowledgeDocument(Base):
    __tablename__ = "knowledge_documents"
    __table_args__ = (
        UniqueConstraint("user_id", "sha256", name="uq_knowledge_documents_user_sha256"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(255))
    # Where it came from (an absolute path, or "upload:<name>"): adding a changed file from the
    # same source replaces the older version.
    source: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    pages: Mapped[int | None] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    embedding_model: Mapped[str] = mapped_column(String(100))
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # How the document was chunked and embedded (openwen.knowledge.chunking.INDEX_VERSION);
    # older documents are listed as needing `openwen docs reindex` (migration 0130).
    index_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class KnowledgeMembership(Base):
    __tablename__ = "knowledge_memberships"

    collection_id: Mapped[int] = mapped_column(
        ForeignKey("knowledge_collections.id", ondelete="CASCADE"), primary_key=True
    )
    document_id: Mapped[str] = mapped_column(
        ForeignKey("knowledge_documents.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class KnowledgeChunk(Base):
    __tablename__ = "knowledge_chunks"
    __table_args__ = (
        Index("ix_knowledge_chunks_user_id", "user_id", "id"),
        Index("ix_knowledge_chunks_document_id", "document_id", "ordinal"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[str] = mapped_column(
        ForeignKey("knowledge_documents.id", ondelete="CASCADE")
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    ordinal: Mapped[int] = mapped_column(Integer)
    page: Mapped[int | None] = mapped_column(Integer)
    section: Mapped[str | None] = mapped_column(Text)
    char_start: Mapped[int] = mapped_column(Integer)
    char_end: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    # What full-text search indexes: title, heading path and text, CJK as bigrams
    # (openwen.knowledge.fulltext.search_text; migration 0130)
    search_text: Mapped[str | None] = mapped_column(Text)


class Memory(Base):
    __tablename__ = "memories"
    __table_args__ = (
        Index("ix_memories_user_id", "user_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(32))
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    embedding_model: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class KnowledgeVersion(Base):
    __tablename__ = "knowledge_versions"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    chunks: Mapped[int] = mapped_column(BigInteger, default=0)
    memories: Mapped[int] = mapped_column(BigInteger, default=0)
