"""API keys and browser login sessions.

Secrets are 256-bit random tokens (``secrets.token_urlsafe(32)``) and only their SHA-256 is stored.
A fast hash is enough here, unlike for passwords: nobody can guess a 256-bit token, so there is
nothing for a slow hash to slow down, and a plain digest lets a key be found with one unique-index
probe. Verifying looks the digest up (the lookup's timing depends on the digest, not on how much
of a secret an attacker guessed right) and then compares digests with ``hmac.compare_digest``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from openwen.errors import InvalidRequestError, NotFoundError
from openwen.storage.base import Repository, rowcount, utcnow
from openwen.storage.models import ApiKey, LoginSession, User
from openwen.storage.records import (
    ApiKeyRecord,
    LoginSessionRecord,
    NewApiKey,
    NewLoginSession,
    UserRecord,
)

KEY_PREFIX = "sk-ow-"
DISPLAY_PREFIX_LEN = len(KEY_PREFIX) + 4
MAX_SECRET_LEN = 256
LAST_USED_RESOLUTION = timedelta(minutes=1)  # don't write on every request
DEFAULT_SESSION_TTL = timedelta(days=30)
SCOPES = ("inference", "tools")  # what a key may do: call the API; run server-side tools
DEFAULT_SCOPES = ("inference",)


def normal_scopes(scopes: object) -> tuple[str, ...]:
    """Known, non-empty scopes in a fixed order; a 400 naming ``scopes`` otherwise. Accepts a
    list of names, or one string of comma-separated names."""
    if isinstance(scopes, str):
        scopes = scopes.split(",")
    if not isinstance(scopes, list | tuple) or not all(isinstance(s, str) for s in scopes):
        raise InvalidRequestError("scopes is a list of names", param="scopes")
    wanted = {s.strip().lower() for s in scopes if s.strip()}
    unknown = sorted(wanted - set(SCOPES))
    if unknown or not wanted:
        raise InvalidRequestError(
            f"unknown scope(s) {', '.join(unknown)}; a key's scopes are some of "
            f"{', '.join(SCOPES)}" if unknown else "a key needs at least one scope",
            param="scopes")
    return tuple(s for s in SCOPES if s in wanted)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _valid_secret(secret: object) -> bool:
    return isinstance(secret, str) and 0 < len(secret) <= MAX_SECRET_LEN


class ApiKeyRepo(Repository):
    def create(self, user_id: int, name: str,
               scopes: tuple[str, ...] | list[str] = DEFAULT_SCOPES) -> NewApiKey:
        """A new key for ``user_id``. The returned ``secret`` is the only copy: show it once."""
        name = name.strip() if isinstance(name, str) else ""
        if not 1 <= len(name) <= 100:
            raise InvalidRequestError("a key name is 1-100 characters", param="name")
        chosen = normal_scopes(scopes)
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        with self.db.write() as s:
            if s.get(User, user_id) is None:
                raise NotFoundError(f"user {user_id!r} not found", param="user")
            row = ApiKey(
                user_id=user_id,
                name=name,
                prefix=secret[:DISPLAY_PREFIX_LEN],
                key_hash=digest(secret),
                scopes=",".join(chosen),
            )
            s.add(row)
            s.flush()
            return NewApiKey(key=ApiKeyRecord.of(row), secret=secret)

    def verify(self, secret: str) -> tuple[UserRecord, ApiKeyRecord] | None:
        """The owner and key for ``secret``; None when unknown, revoked, or its user is disabled.
        Records ``last_used_at`` (to the minute)."""
        if not _valid_secret(secret):
            return None
        wanted = digest(secret)
        with self.db.read() as s:
            found = s.execute(
                select(ApiKey, User)
                .join(User, User.id == ApiKey.user_id)
                .where(ApiKey.key_hash == wanted)
            ).first()
            if found is None:
                return None
            key, user = found
            if not hmac.compare_digest(key.key_hash, wanted):
                return None
            if key.revoked_at is not None or user.disabled:
                return None
            key_record, user_record = ApiKeyRecord.of(key), UserRecord.of(user)
        now = utcnow()
        if key_record.last_used_at is None or now - key_record.last_used_at > LAST_USED_RESOLUTION:
            with self.db.write() as s:
                row = s.get(ApiKey, key_record.id)
                if row is not None:
                    row.last_used_at = now
                    s.flush()
                    key_record = ApiKeyRecord.of(row)
        return user_record, key_record

    def list_for(self, user_id: int, *, include_revoked: bool = True) -> list[ApiKeyRecord]:
        """The user's keys, newest first."""
        query = select(ApiKey).where(ApiKey.user_id == user_id)
        if not include_revoked:
            query = query.where(ApiKey.revoked_at.is_(None))
        with self.db.read() as s:
            rows = s.scalars(query.order_by(ApiKey.created_at.desc(), ApiKey.id.desc()))
            return [ApiKeyRecord.of(r) for r in rows]

    def get(self, user_id: int, key_id: int) -> ApiKeyRecord:
        with self.db.read() as s:
            return ApiKeyRecord.of(self._owned(s, user_id, key_id))

    def revoke(self, user_id: int, key_id: int) -> ApiKeyRecord:
        """Revoke one of the user's keys (revoking twice keeps the first time)."""
        with self.db.write() as s:
            row = self._owned(s, user_id, key_id)
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                s.flush()
            return ApiKeyRecord.of(row)

    @staticmethod
    def _owned(s: Session, user_id: int, key_id: int) -> ApiKey:
        row = s.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.user_id == user_id))
        if row is None:
            raise NotFoundError(f"API key {key_id!r} not found", param="key_id")
        return row


class LoginSessionRepo(Repository):
    """Cookie logins: the cookie carries a random token, the table its SHA-256."""

    def create(self, user_id: int, ttl: timedelta = DEFAULT_SESSION_TTL) -> NewLoginSession:
        token = secrets.token_urlsafe(32)
        now = utcnow()
        with self.db.write() as s:
            if s.get(User, user_id) is None:
                raise NotFoundError(f"user {user_id!r} not found", param="user")
            row = LoginSession(
                id=digest(token),
                user_id=user_id,
                csrf_token=secrets.token_urlsafe(32),
                created_at=now,
                expires_at=now + ttl,
            )
            s.add(row)
            s.flush()
            return NewLoginSession(token=token, session=LoginSessionRecord.of(row))

    def get(self, token: str) -> tuple[UserRecord, LoginSessionRecord] | None:
        """The user and session for a cookie token; None when unknown, expired or disabled."""
        if not _valid_secret(token):
            return None
        with self.db.read() as s:
            found = s.execute(
                select(LoginSession, User)
                .join(User, User.id == LoginSession.user_id)
                .where(LoginSession.id == digest(token), LoginSession.expires_at > utcnow())
            ).first()
            if found is None:
                return None
            session, user = found
            if user.disabled:
                return None
            return UserRecord.of(user), LoginSessionRecord.of(session)

    def delete(self, token: str) -> bool:
        """Log out; False when the token was not a live session."""
        if not _valid_secret(token):
            return False
        with self.db.write() as s:
            result = s.execute(delete(LoginSession).where(LoginSession.id == digest(token)))
            return rowcount(result) > 0

    def delete_for_user(self, user_id: int) -> int:
        """Log the user out everywhere; returns how many sessions ended."""
        with self.db.write() as s:
            return rowcount(s.execute(delete(LoginSession).where(LoginSession.user_id == user_id)))

    def purge_expired(self) -> int:
        with self.db.write() as s:
            return rowcount(
                s.execute(delete(LoginSession).where(LoginSession.expires_at <= utcnow()))
            )
