"""API-key authentication for the OpenAI-compatible API.

Keys are created with ``openwen keys create`` and stored hashed (SHA-256 of a 256-bit random
secret; :mod:`openwen.storage.credentials` looks the digest up and compares it in constant time).
Clients send ``Authorization: Bearer <key>``, as every OpenAI SDK does.

Keys are required whenever the server listens on anything but a loopback address, and on loopback
too when ``require_api_key`` is set. ``openwen serve`` refuses to listen beyond loopback while no
active key exists, since nobody could use the server. When keys are not required, a request may
still send a valid key (then it acts with that key's user and scopes); a wrong or foreign bearer
token is ignored there (clients often send a placeholder), and the request is anonymous.

**Scopes.** Each key carries scopes (``openwen keys create --scope inference,tools``):
``inference`` (every ``/v1`` route: chat, completions, embeddings, models) and ``tools``
(openwen's server-side tools, ``"openwen": {"tools": ...}``). Server-side tools also need the
admin's ``api_server_tools = true`` and are never run for anonymous callers.

Every API router is included with ``dependencies=API_DEPENDENCIES``; a route that runs
server-side tools calls :func:`check_server_tools` first.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from typing import TYPE_CHECKING

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from openwen.config import Settings
from openwen.errors import AuthenticationError, ConfigError, PermissionDeniedError

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
        self._lock = threading.Lock()

    def open(self) -> Database:
        """The key database (opened and migrated on first use; blocking)."""
        with self._lock:
            if self._db is None:
                self._db = open_database(self._settings)
            return self._db

    def _repo(self) -> ApiKeyRepo:
        from openwen.storage.credentials import ApiKeyRepo

        return ApiKeyRepo(self.open())

    async def authenticate(self, request: Request) -> UserRecord | None:
        """The key's user (set on ``request.state.user``, the key on ``.api_key``), or None
        for an anonymous request where keys are not required."""
        from openwen.storage.credentials import KEY_PREFIX

        scheme, _, secret = request.headers.get("authorization", "").partition(" ")
        secret = secret.strip()
        bearer = scheme.lower() == "bearer" and bool(secret)
        if not bearer and (api_key := request.headers.get("x-api-key", "").strip()):
            secret, bearer = api_key, True  # Anthropic's clients send the key as x-api-key
        if not self.required and not (bearer and secret.startswith(KEY_PREFIX)):
            return None
        if not bearer:
            raise AuthenticationError(
                "missing API key: send it as 'Authorization: Bearer <key>' (or 'x-api-key') "
                "(create one with `openwen keys create`)", code="missing_api_key")
        repo = await run_in_threadpool(self._repo)
        found = await run_in_threadpool(repo.verify, secret)
        if found is None:
            if not self.required:
                return None
            raise AuthenticationError("invalid API key (unknown or revoked)")
        user, key = found
        request.state.user = user
        request.state.api_key = key
        return user

    def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.dispose()


async def require_api_key(request: Request) -> None:
    """FastAPI dependency guarding the API routes: a valid key with the ``inference`` scope
    (or, where keys are not required, an anonymous request)."""
    auth: ApiKeyAuth = request.app.state.auth
    await auth.authenticate(request)
    key = getattr(request.state, "api_key", None)
    if key is not None and "inference" not in key.scopes:
        raise PermissionDeniedError("this API key lacks the 'inference' scope",
                                    code="missing_scope")


API_DEPENDENCIES = [Depends(require_api_key)]


def check_server_tools(request: Request, param: str = "openwen.tools") -> None:
    """Refuse (403) to run server-side tools unless the admin turned them on
    (``api_server_tools``) and the request's API key has the ``tools`` scope."""
    settings: Settings = request.app.state.settings
    if not settings.api_server_tools:
        raise PermissionDeniedError(
            "server-side tools are off on this server's API; an admin can turn them on with "
            "api_server_tools = true (then only for API keys with the 'tools' scope)",
            param=param, code="server_tools_disabled")
    key = getattr(request.state, "api_key", None)
    if key is None:
        raise PermissionDeniedError(
            "server-side tools need an API key with the 'tools' scope; anonymous requests "
            "never run them", param=param, code="api_key_required")
    if "tools" not in key.scopes:
        raise PermissionDeniedError(
            "this API key lacks the 'tools' scope; create one with "
            "`openwen keys create --scope inference,tools`", param=param, code="missing_scope")
