"""Login rate limiting shared by every instance: the rules of
:mod:`openwen.server.app.ratelimit` (five failures for one username and address within five
minutes lock that pair until the oldest leaves the window; a wider limit per address), with the
failures counted in the database (:mod:`openwen.storage.ratelimits`) instead of in memory, so an
attacker gains nothing by spreading attempts over the instances behind a load balancer.

The methods block (database calls): run them off the event loop.
"""

from __future__ import annotations

import math

from openwen.server.app.ratelimit import MAX_FAILURES, MAX_FAILURES_PER_ADDRESS, WINDOW_SECONDS
from openwen.storage.base import utcnow
from openwen.storage.ratelimits import RateLimitRepo

PURGE_EVERY = 100  # failures recorded between purges of old events


class SharedLoginLimiter:
    def __init__(self, repo: RateLimitRepo, max_failures: int = MAX_FAILURES,
                 window: float = WINDOW_SECONDS, *,
                 max_per_address: int = MAX_FAILURES_PER_ADDRESS):
        self.repo = repo
        self.max_failures = max_failures
        self.max_per_address = max_per_address
        self.window = window
        self._recorded = 0

    @staticmethod
    def _keys(username: str, address: str) -> tuple[str, str]:
        return f"login:{username.strip().lower()}@{address}", f"login-address:{address}"

    def retry_after(self, username: str, address: str) -> int:
        """Seconds until ``username`` may try again from ``address`` (0: now)."""
        pair, wide = self._keys(username, address)
        return max(self._wait(pair, self.max_failures), self._wait(wide, self.max_per_address))

    def failed(self, username: str, address: str) -> None:
        self.repo.record(self._keys(username, address))
        self._recorded += 1
        if self._recorded % PURGE_EVERY == 0:
            self.repo.purge(self.window)

    def succeeded(self, username: str, address: str) -> None:
        self.repo.clear(self._keys(username, address)[0])

    def _wait(self, key: str, limit: int) -> int:
        times = self.repo.times(key, self.window)
        if len(times) < limit:
            return 0
        opens = times[-limit].timestamp() + self.window
        return max(1, math.ceil(opens - utcnow().timestamp()))
