"""Rate-limit counters shared by every instance: attempts in a short sliding window.

Each counted attempt (a login, a sign-up) is a row of ``rate_limit_events`` with its key and
time. :class:`RateLimitRepo` is the database implementation of
:class:`openwen.server.app.ratelimit.AttemptStore`: every instance behind a load balancer sees
the same counts, so five failed logins spread over several instances lock the account as on one.
:meth:`RateLimitRepo.take` counts and refuses in one write transaction (``BEGIN IMMEDIATE`` on
SQLite, a transaction-scoped advisory lock per key on PostgreSQL), so concurrent attempts on
several instances cannot all slip under the limit. Times are wall-clock seconds (shared by every
process), old rows are purged as it goes.
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime

from sqlalchemy import BigInteger, Integer, String, delete, func, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from openwen.storage.base import Repository
from openwen.storage.models import Base

MAX_KEY = 255
PURGE_EVERY = 200  # attempts taken between purges of rows older than the window


class RateLimitEvent(Base):
    __tablename__ = "rate_limit_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    key: Mapped[str] = mapped_column(String(MAX_KEY), index=True)
    at: Mapped[datetime] = mapped_column(index=True)


def _when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class RateLimitRepo(Repository):
    """Attempt counts per key in the database (an ``AttemptStore``; clock: ``time.time``)."""

    _taken = 0

    def take(self, key: str, limit: int, window: float, now: float) -> float:
        key = key[:MAX_KEY]
        with self.db.write() as s:
            self._lock(s, key)
            since = _when(now - window)
            query = (select(RateLimitEvent.at)
                     .where(RateLimitEvent.key == key, RateLimitEvent.at > since)
                     .order_by(RateLimitEvent.at.desc()).limit(limit))
            recent = list(s.scalars(query))
            if len(recent) >= limit:
                oldest = recent[-1]
                if oldest.tzinfo is None:  # SQLite gives naive UTC back
                    oldest = oldest.replace(tzinfo=UTC)
                return max(1e-3, oldest.timestamp() + window - now)
            s.add(RateLimitEvent(key=key, at=_when(now)))
        self._taken += 1
        if self._taken % PURGE_EVERY == 0:
            self.purge(now - max(window, 3600.0))
        return 0.0

    def give_back(self, key: str, now: float) -> None:
        key = key[:MAX_KEY]
        with self.db.write() as s:
            first = s.scalar(select(func.min(RateLimitEvent.id))
                             .where(RateLimitEvent.key == key, RateLimitEvent.at == _when(now)))
            if first is not None:
                s.execute(delete(RateLimitEvent).where(RateLimitEvent.id == first))

    def clear(self, key: str) -> None:
        with self.db.write() as s:
            s.execute(delete(RateLimitEvent).where(RateLimitEvent.key == key[:MAX_KEY]))

    def purge(self, before: float) -> None:
        """Forget attempts older than ``before`` (wall-clock seconds)."""
        with self.db.write() as s:
            s.execute(delete(RateLimitEvent).where(RateLimitEvent.at <= _when(before)))

    @staticmethod
    def _lock(s: Session, key: str) -> None:
        """Serialise takes of one key across instances (SQLite's write lock already does)."""
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                      {"k": zlib.crc32(key.encode()) - 2**31})


