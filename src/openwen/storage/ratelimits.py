"""Rate-limit counters shared by every instance: events in a short sliding window.

Each counted event (a failed login, for one username and address) is a row of
``rate_limit_events`` with its key and time. A limiter asks for the times of a key's events within
its window; old rows are purged as it goes. Every instance behind a load balancer sees the same
counts, so five failed logins spread over several instances lock the account as on one.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import BigInteger, Integer, String, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from openwen.storage.base import Repository, utcnow
from openwen.storage.models import Base

MAX_KEY = 255


class RateLimitEvent(Base):
    __tablename__ = "rate_limit_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    key: Mapped[str] = mapped_column(String(MAX_KEY), index=True)
    at: Mapped[datetime] = mapped_column(index=True)


class RateLimitRepo(Repository):
    def record(self, keys: Iterable[str], at: datetime | None = None) -> None:
        """Count one event under each of ``keys``."""
        when = at or utcnow()
        with self.db.write() as s:
            s.add_all(RateLimitEvent(key=k[:MAX_KEY], at=when) for k in keys)

    def times(self, key: str, window: float) -> list[datetime]:
        """Times of ``key``'s events within the last ``window`` seconds, oldest first."""
        since = utcnow() - timedelta(seconds=window)
        with self.db.read() as s:
            query = (select(RateLimitEvent.at)
                     .where(RateLimitEvent.key == key[:MAX_KEY], RateLimitEvent.at > since)
                     .order_by(RateLimitEvent.at))
            return list(s.scalars(query))

    def clear(self, key: str) -> None:
        with self.db.write() as s:
            s.execute(delete(RateLimitEvent).where(RateLimitEvent.key == key[:MAX_KEY]))

    def purge(self, window: float) -> None:
        """Forget events older than ``window`` seconds."""
        before = utcnow() - timedelta(seconds=window)
        with self.db.write() as s:
            s.execute(delete(RateLimitEvent).where(RateLimitEvent.at <= before))
