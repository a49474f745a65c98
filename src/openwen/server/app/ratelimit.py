"""Login rate limiting: failed attempts per (username, client address) in a sliding window.

Five failures within five minutes lock that pair out until the oldest failure leaves the window;
a wider limit per address alone slows guessing across many usernames. A successful login clears
the pair's failures. Counts live in memory, per process (several instances each count their own).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

MAX_FAILURES = 5
MAX_FAILURES_PER_ADDRESS = 30
WINDOW_SECONDS = 300.0
MAX_KEYS = 100_000


class LoginLimiter:
    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        window: float = WINDOW_SECONDS,
        *,
        max_per_address: int = MAX_FAILURES_PER_ADDRESS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.max_failures = max_failures
        self.max_per_address = max_per_address
        self.window = window
        self.clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def retry_after(self, username: str, address: str) -> int:
        """Seconds until ``username`` may try again from ``address`` (0: now)."""
        waits = [
            self._wait((username.strip().lower(), address), self.max_failures),
            self._wait(("", address), self.max_per_address),
        ]
        return max(waits)

    def failed(self, username: str, address: str) -> None:
        now = self.clock()
        if len(self._failures) > MAX_KEYS:
            self._prune(now)
        for key in ((username.strip().lower(), address), ("", address)):
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, username: str, address: str) -> None:
        self._failures.pop((username.strip().lower(), address), None)

    def _wait(self, key: tuple[str, str], limit: int) -> int:
        times = self._failures.get(key)
        if not times:
            return 0
        now = self.clock()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return 0
        if len(times) < limit:
            return 0
        return max(1, math.ceil(times[-limit] + self.window - now))

    def _prune(self, now: float) -> None:
        for key in [k for k, t in self._failures.items() if not t or t[-1] <= now - self.window]:
            del self._failures[key]
