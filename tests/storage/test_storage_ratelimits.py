"""Login limits counted in the database: two instances on one database share the counts, and
concurrent attempts cannot all slip under the limit (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.engine import URL

from openwen.server.app.ratelimit import LoginLimiter
from openwen.storage import Database, Storage


def _limiter(storage: Storage, **kw: int) -> LoginLimiter:
    return LoginLimiter(store=storage.rate_limits, clock=time.time, **kw)  # type: ignore[arg-type]


def test_two_instances_share_login_counts(storage: Storage, database_url: str | URL) -> None:
    other_db = Database(database_url)  # a second instance's own connection pool
    try:
        first, second = _limiter(storage), _limiter(Storage(other_db))
        for i in range(5):  # five failures, alternating between the instances
            limiter = first if i % 2 == 0 else second
            assert limiter.attempt("alice", "10.0.0.1")[0] == 0
        assert first.attempt("alice", "10.0.0.1")[0] > 0
        assert second.attempt("alice", "10.0.0.1")[0] > 0
        assert second.attempt("bob", "10.0.0.1")[0] == 0  # other names are not locked
    finally:
        other_db.dispose()


def test_a_success_gives_its_attempt_back(storage: Storage) -> None:
    limiter = _limiter(storage, max_failures=3)
    for _ in range(2):
        assert limiter.attempt("carol", "10.0.0.2")[0] == 0
    wait, when = limiter.attempt("carol", "10.0.0.2")
    assert wait == 0
    limiter.succeeded("carol", "10.0.0.2", when)
    for _ in range(3):  # the pair starts afresh
        assert limiter.attempt("carol", "10.0.0.2")[0] == 0
    assert limiter.attempt("carol", "10.0.0.2")[0] > 0


def test_concurrent_attempts_are_counted_atomically(storage: Storage) -> None:
    limiter = _limiter(storage, max_failures=5)
    with ThreadPoolExecutor(8) as pool:
        waits = list(pool.map(lambda _: limiter.attempt("dave", "10.0.0.3")[0], range(40)))
    assert sum(1 for w in waits if w == 0) == 5
