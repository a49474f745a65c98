"""The knowledge migrations (0100_knowledge, 0130_chinese_fulltext) match the ORM models, and go
down and up again cleanly."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from openwen.storage import Database
from openwen.storage.db import MIGRATIONS_DIR
from openwen.storage.models import Base, include_in_autogenerate

TABLES = {"knowledge_collections", "knowledge_documents", "knowledge_memberships",
          "knowledge_chunks", "memories", "knowledge_versions"}


def test_models_match_the_migration(storage) -> None:
    db: Database = storage.db
    heads = ScriptDirectory(str(MIGRATIONS_DIR)).get_heads()
    assert heads == [db.current_revision()]  # one line of migrations, all applied
    with db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": include_in_autogenerate})
        assert compare_metadata(context, Base.metadata) == []


def test_downgrade_and_upgrade_again(storage) -> None:
    db: Database = storage.db
    db.downgrade("0002_search")
    assert not TABLES & set(inspect(db.engine).get_table_names())
    db.upgrade()
    assert TABLES <= set(inspect(db.engine).get_table_names())
