"""The database handle: engine, sessions and migrations.

``Database(url)`` accepts any SQLAlchemy URL. SQLite (the default, ``sqlite:///path/openwen.db``)
runs in WAL mode with foreign keys on, a busy timeout and ``synchronous=NORMAL``; its parent
directory is created when missing. Write transactions on SQLite start with ``BEGIN IMMEDIATE``
so concurrent writers queue on the busy timeout instead of failing on a stale snapshot.
PostgreSQL uses psycopg 3: ``postgresql://`` and ``postgres://`` URLs are mapped to
``postgresql+psycopg://``.

``upgrade()`` applies the Alembic migrations shipped in ``openwen/storage/migrations`` (no
alembic.ini needed); it is idempotent and safe to call at every start.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 10_000


def normalise_url(url: str | URL) -> URL:
    """Parse ``url``: plain PostgreSQL URLs get the psycopg 3 driver, and a SQLite file path
    has ``~`` expanded."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    database = parsed.database or ""
    if parsed.get_backend_name() == "sqlite" and database.startswith("~"):
        parsed = parsed.set(database=str(Path(database).expanduser()))
    return parsed


class Database:
    """One database: an engine, session factories and the migration runner."""

    def __init__(self, url: str | URL, *, echo: bool = False) -> None:
        self.url = normalise_url(url)
        self.engine = self._create_engine(echo)
        # Same pool, but transactions begin with BEGIN IMMEDIATE on SQLite.
        self.write_engine = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        self._reader = sessionmaker(self.engine, expire_on_commit=False)
        self._writer = sessionmaker(self.write_engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def _create_engine(self, echo: bool) -> Engine:
        if self.url.get_backend_name() != "sqlite":
            return create_engine(self.url, echo=echo, pool_pre_ping=True)
        database = self.url.database or ""
        kwargs: dict[str, Any] = {"echo": echo}
        if database in ("", ":memory:"):
            kwargs["poolclass"] = StaticPool
            kwargs["connect_args"] = {"check_same_thread": False}
        else:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(self.url, **kwargs)
        _configure_sqlite(engine)
        return engine

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading (a deferred transaction, closed on exit, never committed)."""
        with self._reader() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session in one write transaction, committed on success, rolled back on error."""
        with self._writer() as session, session.begin():
            yield session

    def upgrade(self, revision: str = "head") -> None:
        """Apply migrations up to ``revision``."""
        from alembic import command

        with self.write_engine.connect() as connection:
            command.upgrade(self.alembic_config(connection), revision)

    def downgrade(self, revision: str) -> None:
        from alembic import command

        with self.write_engine.connect() as connection:
            command.downgrade(self.alembic_config(connection), revision)

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def alembic_config(self, connection: Connection | None = None) -> Any:
        """An Alembic ``Config`` pointing at the packaged migrations (and at ``connection``)."""
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        url = self.url.render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # configparser escape
        config.attributes["connection"] = connection
        return config

    def dispose(self) -> None:
        self.engine.dispose()


def _configure_sqlite(engine: Engine) -> None:
    """Pragmas on every new connection, and explicit BEGIN so SQLAlchemy owns transactions."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (pysqlite's own handling delays and hides it).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")
