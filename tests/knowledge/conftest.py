"""Knowledge fixtures: one real all-MiniLM-L6-v2 embedder for the whole session, and a migrated
database per test on SQLite (a file in tmp_path) and, with OPENWEN_TEST_POSTGRES_URL, PostgreSQL
(a fresh schema per test)."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Engine

import openwen.storage.knowledge_models  # noqa: F401 - registers the tables on Base
from openwen.knowledge import KnowledgeBase, KnowledgeSettings, LocalEmbedder
from openwen.storage import Database, Storage, UserRecord
from openwen.storage.db import normalise_url

sys.path.insert(0, str(Path(__file__).parent))  # pdfgen

POSTGRES_ENV = "OPENWEN_TEST_POSTGRES_URL"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def embedder() -> Iterator[LocalEmbedder]:
    """all-MiniLM-L6-v2, loaded once (a few seconds on two cores)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    loaded = LocalEmbedder.minilm()
    loaded.embed(["warm up"])
    yield loaded
    loaded.close()


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Engine]:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV} (see tests/storage/POSTGRES.md)")
    engine = create_engine(normalise_url(url), isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | URL]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kb.db'}"
        return
    admin: Engine = request.getfixturevalue("pg_admin")
    schema = f"openwen_kb_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield admin.url.update_query_dict({"options": f"-csearch_path={schema}"})
    with admin.connect() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture
def storage(db_url: str | URL) -> Iterator[Storage]:
    db = Database(db_url)
    db.upgrade()
    yield Storage(db)
    db.dispose()


@pytest.fixture
def sqlite_storage(tmp_path: Path) -> Iterator[Storage]:
    """SQLite only, for tests about files and parsing rather than the database."""
    db = Database(f"sqlite:///{tmp_path / 'kb-sqlite.db'}")
    db.upgrade()
    yield Storage(db)
    db.dispose()


@pytest.fixture
def alice(storage: Storage) -> UserRecord:
    return storage.users.create("alice", None)


@pytest.fixture
def bob(storage: Storage) -> UserRecord:
    return storage.users.create("bob", None)


@pytest.fixture
def kb(storage: Storage, embedder: LocalEmbedder) -> KnowledgeBase:
    return KnowledgeBase(storage.db, embedder, KnowledgeSettings(chunk_chars=400,
                                                                 chunk_overlap=80))


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """A folder of small documents in several formats."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "lease.md").write_text(
        "# Apartment lease\n\n## Pets\n\nTenants may keep one cat or one small dog, with the "
        "landlord's written approval. Reptiles are not allowed.\n\n## Rent\n\nRent is due on "
        "the first day of each month. A late fee of 40 dollars applies after the fifth day.\n\n"
        "## Heating\n\nThe boiler is serviced every October by the building manager.\n")
    (folder / "voyage.txt").write_text(
        "CHAPTER I\n\nWe sailed from Lisbon at dawn; the harbour mist lifted as gulls circled "
        "the mast.\n\nCHAPTER II\n\nBy noon the wind had turned against us, and the captain "
        "ordered the sails reefed before the storm.\n")
    (folder / "plants.html").write_text(
        "<html><head><title>Plant care</title><style>p{}</style></head><body>"
        "<h1>Plant care</h1><p>Water the fern twice a week and keep it out of direct sun.</p>"
        "<h2>Cactus</h2><p>The cactus needs water only once a month in winter.</p>"
        "<script>var x = 'never indexed';</script></body></html>")
    (folder / "birthdays.csv").write_text(
        "name,relation,birthday\nMia,daughter,March 3\nTom,brother,July 19\n")
    return folder
