"""Documents (RAG) and long-term memory: collections, documents, chunks, memories.

Full-text search over chunks (section heading + text) and memories:

- SQLite: FTS5 external-content tables ``knowledge_chunks_fts`` and ``memories_fts`` kept in sync
  by triggers, tokenizer ``porter unicode61`` (English stemming, diacritics folded).
- PostgreSQL: GIN expression indexes on ``to_tsvector('english', ...)``.

On PostgreSQL with the pgvector extension available (``CREATE EXTENSION vector`` allowed), chunk
embeddings are also kept in ``knowledge_chunk_vectors`` (a ``vector`` column), which retrieval
then uses instead of an in-memory matrix. Without pgvector that table is simply not created.

Revision ID: 0100_knowledge
Revises: 0002_search
Create Date: 2025-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0100_knowledge"
down_revision = "0002_search"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TOKENIZE = "porter unicode61 remove_diacritics 2"
PGVECTOR_TABLE = "knowledge_chunk_vectors"


def _time(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_id"], ["users.id"], ondelete="CASCADE", name=f"fk_{table}_user_id_users"
    )


def upgrade() -> None:
    _create_collections_and_documents()
    _create_chunks()
    _create_memories()
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _run(SQLITE_UP)
    elif dialect == "postgresql":
        _run(POSTGRES_UP)
        _create_pgvector_table()


def _create_collections_and_documents() -> None:
    op.create_table(
        "knowledge_collections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=True),
        sa.Column("conversation_id", sa.String(36), nullable=True),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_knowledge_collections"),
        _user_fk("knowledge_collections"),
        sa.ForeignKeyConstraint(
            ["conversation_id"], ["conversations.id"], ondelete="CASCADE",
            name="fk_knowledge_collections_conversation_id_conversations",
        ),
        sa.UniqueConstraint("user_id", "name", name="uq_knowledge_collections_user_name"),
        sa.UniqueConstraint("conversation_id", name="uq_knowledge_collections_conversation_id"),
    )
    op.create_table(
        "knowledge_documents",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("embedding_model", sa.String(100), nullable=False),
        sa.Column("meta", JSON, nullable=False),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_knowledge_documents"),
        _user_fk("knowledge_documents"),
        sa.UniqueConstraint("user_id", "sha256", name="uq_knowledge_documents_user_sha256"),
    )
    op.create_table(
        "knowledge_memberships",
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.String(36), nullable=False),
        _time("added_at"),
        sa.PrimaryKeyConstraint(
            "collection_id", "document_id", name="pk_knowledge_memberships"
        ),
        sa.ForeignKeyConstraint(
            ["collection_id"], ["knowledge_collections.id"], ondelete="CASCADE",
            name="fk_knowledge_memberships_collection_id_knowledge_collections",
        ),
        sa.ForeignKeyConstraint(
            ["document_id"], ["knowledge_documents.id"], ondelete="CASCADE",
            name="fk_knowledge_memberships_document_id_knowledge_documents",
        ),
    )
    op.create_index(
        "ix_knowledge_memberships_document_id",
        "knowledge_memberships", ["document_id"],
    )


def _create_chunks() -> None:
    op.create_table(
        "knowledge_chunks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("page", sa.Integer(), nullable=True),
        sa.Column("section", sa.Text(), nullable=True),
        sa.Column("char_start", sa.Integer(), nullable=False),
        sa.Column("char_end", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_knowledge_chunks"),
        sa.ForeignKeyConstraint(
            ["document_id"], ["knowledge_documents.id"], ondelete="CASCADE",
            name="fk_knowledge_chunks_document_id_knowledge_documents",
        ),
        _user_fk("knowledge_chunks"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_knowledge_chunks_user_id", "knowledge_chunks", ["user_id", "id"])
    op.create_index(
        "ix_knowledge_chunks_document_id", "knowledge_chunks", ["document_id", "ordinal"]
    )


def _create_memories() -> None:
    op.create_table(
        "memories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.Column("embedding_model", sa.String(100), nullable=True),
        _time("created_at"),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_memories"),
        _user_fk("memories"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_memories_user_id", "memories", ["user_id", "id"])
    op.create_table(
        "knowledge_versions",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("chunks", sa.BigInteger(), nullable=False),
        sa.Column("memories", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_knowledge_versions"),
        _user_fk("knowledge_versions"),
    )


SQLITE_UP = [
    "CREATE VIRTUAL TABLE knowledge_chunks_fts USING fts5(section, text, "
    f"content='knowledge_chunks', content_rowid='id', tokenize='{TOKENIZE}')",
    """CREATE TRIGGER knowledge_chunks_fts_insert AFTER INSERT ON knowledge_chunks BEGIN
        INSERT INTO knowledge_chunks_fts(rowid, section, text)
            VALUES (new.id, new.section, new.text);
    END""",
    """CREATE TRIGGER knowledge_chunks_fts_update AFTER UPDATE OF section, text
        ON knowledge_chunks BEGIN
        INSERT INTO knowledge_chunks_fts(knowledge_chunks_fts, rowid, section, text)
            VALUES ('delete', old.id, old.section, old.text);
        INSERT INTO knowledge_chunks_fts(rowid, section, text)
            VALUES (new.id, new.section, new.text);
    END""",
    """CREATE TRIGGER knowledge_chunks_fts_delete AFTER DELETE ON knowledge_chunks BEGIN
        INSERT INTO knowledge_chunks_fts(knowledge_chunks_fts, rowid, section, text)
            VALUES ('delete', old.id, old.section, old.text);
    END""",
    "CREATE VIRTUAL TABLE memories_fts USING fts5(text, content='memories', "
    f"content_rowid='id', tokenize='{TOKENIZE}')",
    """CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories BEGIN
        INSERT INTO memories_fts(rowid, text) VALUES (new.id, new.text);
    END""",
    """CREATE TRIGGER memories_fts_update AFTER UPDATE OF text ON memories BEGIN
        INSERT INTO memories_fts(memories_fts, rowid, text) VALUES ('delete', old.id, old.text);
        INSERT INTO memories_fts(rowid, text) VALUES (new.id, new.text);
    END""",
    """CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories BEGIN
        INSERT INTO memories_fts(memories_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END""",
]

SQLITE_DOWN = [
    "DROP TRIGGER memories_fts_delete",
    "DROP TRIGGER memories_fts_update",
    "DROP TRIGGER memories_fts_insert",
    "DROP TABLE memories_fts",
    "DROP TRIGGER knowledge_chunks_fts_delete",
    "DROP TRIGGER knowledge_chunks_fts_update",
    "DROP TRIGGER knowledge_chunks_fts_insert",
    "DROP TABLE knowledge_chunks_fts",
]

# Keep these expressions identical to the ones in openwen.knowledge.fulltext.
POSTGRES_UP = [
    "CREATE INDEX ix_knowledge_chunks_fts ON knowledge_chunks USING gin "
    "(to_tsvector('english'::regconfig, coalesce(section, '') || ' ' || text))",
    "CREATE INDEX ix_memories_fts ON memories USING gin "
    "(to_tsvector('english'::regconfig, text))",
]

POSTGRES_DOWN = [
    f"DROP TABLE IF EXISTS {PGVECTOR_TABLE}",
    "DROP INDEX ix_memories_fts",
    "DROP INDEX ix_knowledge_chunks_fts",
]


def _create_pgvector_table() -> None:
    """The pgvector table, when the extension is installed or may be created here."""
    bind = op.get_bind()
    available = bind.exec_driver_sql(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
    ).scalar()
    if not available:
        return
    try:
        with bind.begin_nested():
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS vector")
    except sa.exc.DBAPIError:  # not allowed to create it (needs a superuser or a trusted ext)
        return
    bind.exec_driver_sql(
        f"CREATE TABLE {PGVECTOR_TABLE} ("
        "chunk_id integer PRIMARY KEY REFERENCES knowledge_chunks(id) ON DELETE CASCADE, "
        "user_id integer NOT NULL, embedding vector NOT NULL)"
    )
    bind.exec_driver_sql(f"CREATE INDEX ix_{PGVECTOR_TABLE}_user_id ON {PGVECTOR_TABLE}(user_id)")


def _run(statements: list[str]) -> None:
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _run(SQLITE_DOWN)
    elif dialect == "postgresql":
        _run(POSTGRES_DOWN)
    op.drop_table("knowledge_versions")
    op.drop_table("memories")
    op.drop_table("knowledge_chunks")
    op.drop_table("knowledge_memberships")
    op.drop_table("knowledge_documents")
    op.drop_table("knowledge_collections")
