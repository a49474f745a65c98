"""Storage fixtures: every test runs on SQLite (a file in tmp_path) and on PostgreSQL.

PostgreSQL needs ``OPENWEN_TEST_POSTGRES_URL`` (see POSTGRES.md); without it those runs are
skipped. Each PostgreSQL test gets its own fresh schema (dropped afterwards), selected through
the connection's ``search_path``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Engine

from openwen.storage import Database, Storage, UserRecord
from openwen.storage.db import normalise_url

POSTGRES_ENV = "OPENWEN_TEST_POSTGRES_URL"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine]:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV} (see tests/storage/POSTGRES.md)")
    engine = create_engine(normalise_url(url), isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


def fresh_postgres_url(admin: Engine) -> tuple[URL, str]:
    schema = f"openwen_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = admin.url.update_query_dict({"options": f"-csearch_path={schema}"})
    return url, schema


def drop_schema(admin: Engine, schema: str) -> None:
    with admin.connect() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | URL]:
    """A URL of an empty database (not migrated)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'openwen.db'}"
        return
    admin = request.getfixturevalue("postgres_admin")
    url, schema = fresh_postgres_url(admin)
    yield url
    drop_schema(admin, schema)


@pytest.fixture
def database(database_url: str | URL) -> Iterator[Database]:
    db = Database(database_url)
    yield db
    db.dispose()


@pytest.fixture
def storage(database: Database) -> Storage:
    database.upgrade()
    return Storage(database)


@pytest.fixture
def alice(storage: Storage) -> UserRecord:
    return storage.users.create("alice", "hash-a")


@pytest.fixture
def bob(storage: Storage) -> UserRecord:
    return storage.users.create("bob", "hash-b")
