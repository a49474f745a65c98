"""Full-text search over message content and conversation titles.

SQLite: FTS5 tables kept in sync by triggers. ``messages_fts`` is an external-content table over
the view ``messages_searchable`` (messages that are not streaming), so a message is indexed once
when it completes rather than re-indexed on every streamed token, and FTS5's ``rebuild`` and
``integrity-check`` commands stay exact. ``conversations_fts`` holds titles (conversation ids are
strings, not stable rowids, so it stores its own copy of the title).

PostgreSQL: GIN expression indexes on ``to_tsvector('simple', ...)``, the one for messages partial
(``status <> 'streaming'``) for the same reason. The ``simple`` configuration is language-neutral
(no stemming, no stop words), matching SQLite's ``unicode61`` tokenizer.

Revision ID: 0002_search
Revises: 0001_initial
Create Date: 2025-11-21
"""

from __future__ import annotations

from alembic import op

revision = "0002_search"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

TOKENIZE = "unicode61 remove_diacritics 2"

SQLITE_UP = [
    "CREATE VIEW messages_searchable AS "
    "SELECT id, content FROM messages WHERE status != 'streaming'",
    "CREATE VIRTUAL TABLE messages_fts USING fts5(content, content='messages_searchable', "
    f"content_rowid='id', tokenize='{TOKENIZE}')",
    """CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts(rowid, content)
            SELECT new.id, new.content WHERE new.status != 'streaming';
    END""",
    """CREATE TRIGGER messages_fts_update AFTER UPDATE OF content, status ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, content)
            SELECT 'delete', old.id, old.content WHERE old.status != 'streaming';
        INSERT INTO messages_fts(rowid, content)
            SELECT new.id, new.content WHERE new.status != 'streaming';
    END""",
    """CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, content)
            SELECT 'delete', old.id, old.content WHERE old.status != 'streaming';
    END""",
    "CREATE VIRTUAL TABLE conversations_fts USING fts5(title, conversation_id UNINDEXED, "
    f"tokenize='{TOKENIZE}')",
    """CREATE TRIGGER conversations_fts_insert AFTER INSERT ON conversations BEGIN
        INSERT INTO conversations_fts(title, conversation_id) VALUES (new.title, new.id);
    END""",
    """CREATE TRIGGER conversations_fts_update AFTER UPDATE OF title ON conversations BEGIN
        DELETE FROM conversations_fts WHERE conversation_id = old.id;
        INSERT INTO conversations_fts(title, conversation_id) VALUES (new.title, new.id);
    END""",
    """CREATE TRIGGER conversations_fts_delete AFTER DELETE ON conversations BEGIN
        DELETE FROM conversations_fts WHERE conversation_id = old.id;
    END""",
    # Index what is already there (nothing on a new database).
    "INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')",
    "INSERT INTO conversations_fts(title, conversation_id) SELECT title, id FROM conversations",
]

SQLITE_DOWN = [
    "DROP TRIGGER conversations_fts_delete",
    "DROP TRIGGER conversations_fts_update",
    "DROP TRIGGER conversations_fts_insert",
    "DROP TABLE conversations_fts",
    "DROP TRIGGER messages_fts_delete",
    "DROP TRIGGER messages_fts_update",
    "DROP TRIGGER messages_fts_insert",
    "DROP TABLE messages_fts",
    "DROP VIEW messages_searchable",
]

POSTGRES_UP = [
    "CREATE INDEX ix_messages_fts ON messages "
    "USING gin (to_tsvector('simple'::regconfig, content)) WHERE status <> 'streaming'",
    "CREATE INDEX ix_conversations_fts ON conversations "
    "USING gin (to_tsvector('simple'::regconfig, title))",
]

POSTGRES_DOWN = ["DROP INDEX ix_conversations_fts", "DROP INDEX ix_messages_fts"]


def _run(statements: list[str]) -> None:
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _run(SQLITE_UP)
    elif dialect == "postgresql":
        _run(POSTGRES_UP)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _run(SQLITE_DOWN)
    elif dialect == "postgresql":
        _run(POSTGRES_DOWN)
