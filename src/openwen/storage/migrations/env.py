"""Alembic environment for openwen's packaged migrations.

Run through ``openwen.storage.db.Database.upgrade()``, which passes its own connection in
``config.attributes["connection"]``. To write a new revision during development:

    .venv/bin/python -c "from alembic import command; from openwen.storage.db import Database; \
        command.revision(Database('sqlite:///dev.db').alembic_config(), 'what changed')"
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from openwen.storage.models import Base, include_in_autogenerate

# An arbitrary constant: concurrent app instances upgrading one PostgreSQL database queue here.
PG_MIGRATION_LOCK = 7_240_117_735


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=include_in_autogenerate,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK}
            )
        context.run_migrations()


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
        return
    from openwen.storage.db import Database

    database = Database(context.config.get_main_option("sqlalchemy.url") or "")
    try:
        with database.write_engine.connect() as new_connection:
            run_migrations(new_connection)
    finally:
        database.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run Database.upgrade()")
run_online()
