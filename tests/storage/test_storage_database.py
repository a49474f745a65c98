"""The database handle and the packaged migrations."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from openwen.storage import Database, Storage
from openwen.storage.db import MIGRATIONS_DIR, normalise_url
from openwen.storage.models import Base, include_in_autogenerate

TABLES = {"users", "api_keys", "sessions", "conversations", "messages", "user_settings"}


def head_revision() -> str:
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    head = script.get_current_head()
    assert head is not None
    return head


def test_migrations_are_shipped_inside_the_package() -> None:
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert list((MIGRATIONS_DIR / "versions").glob("0001_*.py"))
    assert not (MIGRATIONS_DIR.parent / "alembic.ini").exists()


def test_upgrade_on_an_empty_database_creates_the_schema(database: Database) -> None:
    assert database.current_revision() is None
    database.upgrade()
    assert database.current_revision() == head_revision()
    assert TABLES <= set(inspect(database.engine).get_table_names())


def test_upgrade_is_idempotent_and_keeps_data(database: Database) -> None:
    database.upgrade()
    storage = Storage(database)
    user = storage.users.create("carol")
    chat = storage.conversations.create(user.id, "kept")
    database.upgrade()
    database.upgrade("head")
    assert database.current_revision() == head_revision()
    assert storage.conversations.get(user.id, chat.id).title == "kept"
    assert storage.users.count() == 1


def test_downgrade_to_base_and_upgrade_again(database: Database) -> None:
    database.upgrade()
    database.downgrade("base")
    assert database.current_revision() is None
    assert not TABLES & set(inspect(database.engine).get_table_names())
    database.upgrade()
    storage = Storage(database)
    user = storage.users.create("dave")
    chat = storage.conversations.create(user.id, "after a round trip")
    storage.messages.add(user.id, chat.id, parent_id=None, role="user", content="searchable words")
    assert [h.conversation_id for h in storage.search.search(user.id, "searchable")] == [chat.id]


def test_models_match_the_migrations(database: Database) -> None:
    """The ORM models and the migration scripts describe the same schema."""
    database.upgrade()
    with database.engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"compare_type": True, "include_object": include_in_autogenerate},
        )
        assert compare_metadata(context, Base.metadata) == []


def test_sqlite_pragmas_and_parent_directory(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "openwen.db"
    db = Database(f"sqlite:///{path}")
    try:
        with db.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert (connection.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0) >= 1000
        assert path.parent.is_dir()
        db.upgrade()
        assert path.is_file()
    finally:
        db.dispose()


def test_foreign_keys_are_enforced(storage: Storage) -> None:
    with pytest.raises(Exception, match="(?i)foreign key"), storage.db.write() as s:
        s.execute(
            text(
                "INSERT INTO api_keys (user_id, name, prefix, key_hash, created_at) "
                "VALUES (999, 'x', 'x', 'x', CURRENT_TIMESTAMP)"
            )
        )


def test_in_memory_sqlite_works_across_sessions() -> None:
    storage = Storage.open("sqlite://")
    try:
        user = storage.users.create("erin")
        assert storage.users.get(user.id).username == "erin"
    finally:
        storage.close()


def test_postgres_urls_get_the_psycopg_driver() -> None:
    assert normalise_url("postgresql://u:p@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("postgres://u:p@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("postgresql+psycopg://u:p@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("sqlite:///x.db").drivername == "sqlite"
    assert normalise_url("sqlite:///~/x.db").database == str(Path.home() / "x.db")


def test_concurrent_writers_do_not_fail(storage: Storage) -> None:
    """Threads writing at once queue on the lock (SQLite: BEGIN IMMEDIATE + busy timeout)."""
    user = storage.users.create("frank")
    chat = storage.conversations.create(user.id)
    targets = [
        storage.messages.add(user.id, chat.id, parent_id=None, role="assistant", status="streaming")
        for _ in range(3)
    ]
    errors: list[BaseException] = []

    def writer(message_id: int) -> None:
        try:
            for i in range(30):
                storage.messages.append(user.id, message_id, f"{i},")
                storage.conversations.rename(user.id, chat.id, f"title {message_id} {i}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(m.id,)) for m in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    expected = "".join(f"{i}," for i in range(30))
    assert all(storage.messages.get(user.id, m.id).content == expected for m in targets)
