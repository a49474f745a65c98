"""API-key authentication for the OpenAI-compatible API.

Keys are created with ``openwen keys create`` and stored hashed (SHA-256 of a 256-bit random
secret; :mod:`openwen.storage.credentials` looks the digest up and compares it in constant time).
Clients send ``Authorization: Bearer <key>``, as every OpenAI SDK does.

Keys are required whenever the server listens on anything but a loopback address, and on loopback
too when ``require_api_key`` is set. ``openwen serve`` refuses to listen beyond loopback while no
active key exists, since nobody could use the server.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from openwen.config import Settings
from openwen.errors import AuthenticationError, ConfigError

if TYPE_CHECKING:
    from openwen.storage.credentials import ApiKeyRepo
    from openwen.storage.db import Database
    from openwen.storage.records import UserRecord

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def keys_required(settings: Settings) -> bool:
    return settings.require_api_key or not is_loopback(settings.host)


def open_database(settings: Settings) -> Database:
    """The configured database, migrated to the current schema."""
    from openwen.storage.db import Database

    db = Database(settings.database)
    db.upgrade()
    return db


def active_key_count(db: Database) -> int:
    from openwen.storage.credentials import ApiKeyRepo
    from openwen.storage.users import UserRepo

    keys = ApiKeyRepo(db)
    return sum(len(keys.list_for(user.id, include_revoked=False))
               for user in UserRepo(db).list_all() if not user.disabled)


def check_bind(settings: Settings, db: Database | None = None) -> None:
    """Refuse to start when keys are required (beyond loopback, or ``require_api_key``) but no
    active key exists: the server would be unusable, or worse, someone might open it up."""
    if not keys_required(settings):
        return
    db = db or open_database(settings)
    if active_key_count(db) > 0:
        return
    if is_loopback(settings.host):
        raise ConfigError("require_api_key is set but no API key exists; create one with "
                          "`openwen keys create`")
    raise ConfigError(
        f"refusing to listen on {settings.host}: API keys are required beyond loopback and "
        "none exists; create one with `openwen keys create`, or listen on 127.0.0.1"
    )


class ApiKeyAuth:
    """Checks the bearer key of each API request (when keys are required)."""

    def __init__(self, settings: Settings, db: Database | None = None):
        self.required = keys_required(settings)
        self._settings = settings
        self._db = db

    def open(self) -> Database:
        """The key database (opened and migrated on first use)."""
        if self._db is None:
            self._db = open_database(self._settings)
        return self._db

    def _repo(self) -> ApiKeyRepo:
        from openwen.storage.credentials import ApiKeyRepo

        return ApiKeyRepo(self.open())

    async def authenticate(self, request: Request) -> UserRecord | None:
        if not self.required:
            return None
        scheme, _, secret = request.headers.get("authorization", "").partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            raise AuthenticationError(
                "missing API key: send it as 'Authorization: Bearer <key>' "
                "(create one with `openwen keys create`)", code="missing_api_key")
        repo = self._repo()
        found = await run_in_threadpool(repo.verify, secret)
        if found is None:
            raise AuthenticationError("invalid API key (unknown or revoked)")
        user = found[0]
        request.state.user = user
        return user

    def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.dispose()


async def require_api_key(request: Request) -> None:
    """FastAPI dependency guarding the ``/v1`` routes."""
    auth: ApiKeyAuth = request.app.state.auth
    await auth.authenticate(request)
