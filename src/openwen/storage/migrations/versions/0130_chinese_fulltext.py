"""Full-text search that finds Chinese words; documents marked for re-indexing.

- ``knowledge_chunks.search_text``: what full-text search indexes (document title, heading path
  and text, every CJK run as its character bigrams; ``openwen.knowledge.fulltext.search_text``).
  Filled here for existing chunks from their heading path and text.
- SQLite: ``knowledge_chunks_fts`` is rebuilt over ``search_text`` (triggers follow);
  PostgreSQL: the GIN index is rebuilt on ``to_tsvector('english', search_text)``.
- ``knowledge_documents.index_version``: how a document was chunked and embedded. Existing
  documents get 1 (the chunking before structure-aware context and boilerplate handling);
  ``openwen docs list`` and the app say how many need ``openwen docs reindex``, which rebuilds
  them (old chunks are kept until each document's new ones are stored).

Revision ID: 0130_chinese_fulltext
Revises: 0200_responses
Create Date: 2026-12-01
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = "0130_chinese_fulltext"
down_revision = "0200_responses"
branch_labels = None
depends_on = None

TOKENIZE = "porter unicode61 remove_diacritics 2"
BATCH = 2000
# A frozen copy of openwen.knowledge.fulltext.segment (a migration must not change later).
CJK_RUN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+")


def _bigrams(match: re.Match[str]) -> str:
    run = match.group(0)
    if len(run) == 1:
        return f" {run} "
    return " " + " ".join(run[i:i + 2] for i in range(len(run) - 1)) + " "


def _search_text(section: str | None, text: str) -> str:
    return CJK_RUN.sub(_bigrams, f"{section}\n{text}" if section else text)


SQLITE_DROP = [
    "DROP TRIGGER knowledge_chunks_fts_delete",
    "DROP TRIGGER knowledge_chunks_fts_update",
    "DROP TRIGGER knowledge_chunks_fts_insert",
    "DROP TABLE knowledge_chunks_fts",
]


def _sqlite_create(column: str) -> list[str]:
    """The FTS table over ``column`` of knowledge_chunks, with its triggers (``section, text``
    for the 0100 layout)."""
    columns = column
    new = ", ".join(f"new.{c.strip()}" for c in column.split(","))
    old = ", ".join(f"old.{c.strip()}" for c in column.split(","))
    return [
        f"CREATE VIRTUAL TABLE knowledge_chunks_fts USING fts5({columns}, "
        f"content='knowledge_chunks', content_rowid='id', tokenize='{TOKENIZE}')",
        f"""CREATE TRIGGER knowledge_chunks_fts_insert AFTER INSERT ON knowledge_chunks BEGIN
            INSERT INTO knowledge_chunks_fts(rowid, {columns}) VALUES (new.id, {new});
        END""",
        f"""CREATE TRIGGER knowledge_chunks_fts_update AFTER UPDATE OF {columns}
            ON knowledge_chunks BEGIN
            INSERT INTO knowledge_chunks_fts(knowledge_chunks_fts, rowid, {columns})
                VALUES ('delete', old.id, {old});
            INSERT INTO knowledge_chunks_fts(rowid, {columns}) VALUES (new.id, {new});
        END""",
        f"""CREATE TRIGGER knowledge_chunks_fts_delete AFTER DELETE ON knowledge_chunks BEGIN
            INSERT INTO knowledge_chunks_fts(knowledge_chunks_fts, rowid, {columns})
                VALUES ('delete', old.id, {old});
        END""",
        "INSERT INTO knowledge_chunks_fts(knowledge_chunks_fts) VALUES ('rebuild')",
    ]


POSTGRES_UP = [
    "DROP INDEX ix_knowledge_chunks_fts",
    "CREATE INDEX ix_knowledge_chunks_fts ON knowledge_chunks USING gin "
    "(to_tsvector('english'::regconfig, coalesce(search_text, '')))",
]
POSTGRES_DOWN = [
    "DROP INDEX ix_knowledge_chunks_fts",
    "CREATE INDEX ix_knowledge_chunks_fts ON knowledge_chunks USING gin "
    "(to_tsvector('english'::regconfig, coalesce(section, '') || ' ' || text))",
]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for statement in SQLITE_DROP:  # before the new column, so no trigger fires per row
            op.execute(statement)
    op.add_column("knowledge_chunks", sa.Column("search_text", sa.Text(), nullable=True))
    op.add_column("knowledge_documents", sa.Column(
        "index_version", sa.Integer(), nullable=False, server_default="1"))
    _fill_search_text()
    if dialect == "sqlite":
        for statement in _sqlite_create("search_text"):
            op.execute(statement)
    elif dialect == "postgresql":
        for statement in POSTGRES_UP:
            op.execute(statement)


def _fill_search_text() -> None:
    bind = op.get_bind()
    last = 0
    while True:
        rows = bind.execute(sa.text(
            "SELECT id, section, text FROM knowledge_chunks WHERE id > :last ORDER BY id "
            "LIMIT :n"), {"last": last, "n": BATCH}).all()
        if not rows:
            return
        bind.execute(sa.text("UPDATE knowledge_chunks SET search_text = :s WHERE id = :i"),
                     [{"i": r[0], "s": _search_text(r[1], r[2])} for r in rows])
        last = rows[-1][0]


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for statement in SQLITE_DROP:
            op.execute(statement)
    elif dialect == "postgresql":
        for statement in POSTGRES_DOWN:
            op.execute(statement)
    with op.batch_alter_table("knowledge_documents") as batch:
        batch.drop_column("index_version")
    with op.batch_alter_table("knowledge_chunks") as batch:
        batch.drop_column("search_text")
    if dialect == "sqlite":
        for statement in _sqlite_create("section, text"):
            op.execute(statement)
