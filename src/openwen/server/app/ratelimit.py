"""Rate limits for logins and sign-ups: attempts per key in a sliding window.

**Logins.** Every attempt is counted *before* the password is checked, under three keys at once:
the (username, client address) pair (5 per 5 minutes), the username from any address (10: so
rotating addresses does not help), and the address across usernames (30). Over any of them the
attempt is refused with 429 and ``Retry-After`` without checking the password, so many logins
sent at once cannot all reach the password check. A successful login gives its attempt back and
clears the pair's and the username's counts.

**Sign-ups.** At most 5 per client address per 10 minutes (successful or not).

**Password hashing** (argon2id, 64 MiB each) runs in worker threads, at most
``MAX_CONCURRENT_HASHES`` at once (:class:`HashGate`); past ``MAX_WAITING_HASHES`` waiting, a
request gets 503 instead of a place in the queue.

Counting and refusing happen in one synchronous step (:meth:`AttemptStore.take`), atomic on the
event loop. The counts live in memory per process (:class:`MemoryAttemptStore`); a store shared
by several instances (a database table) implements the same small interface, making ``take``
one transaction.

The client address is the socket's peer, or the forwarded address only when the request came
through a proxy in ``forwarded_allow_ips`` (uvicorn decides; by default nothing is forwarded).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from starlette.concurrency import run_in_threadpool

from openwen.errors import OverloadedError

MAX_FAILURES = 5  # per (username, address)
MAX_PER_USERNAME = 10  # per username, any address
MAX_FAILURES_PER_ADDRESS = 30  # per address, any username
WINDOW_SECONDS = 300.0
MAX_SIGNUPS = 5  # per address
SIGNUP_WINDOW_SECONDS = 600.0
MAX_KEYS = 100_000
MAX_CONCURRENT_HASHES = 2  # argon2id hashes at once (64 MiB each)
MAX_WAITING_HASHES = 32


class AttemptStore(Protocol):
    """Attempt counts per key. Implementations make :meth:`take` atomic."""

    def take(self, key: str, limit: int, window: float, now: float) -> float:
        """Record an attempt on ``key`` at ``now`` and return 0 if fewer than ``limit`` lie in
        the ``window`` before it; otherwise record nothing and return the seconds until the
        oldest one leaves the window."""
        ...

    def give_back(self, key: str, now: float) -> None:
        """Remove the attempt recorded on ``key`` at ``now`` (one that turned out fine)."""
        ...

    def clear(self, key: str) -> None:
        ...


class MemoryAttemptStore:
    """The in-process store: a deque of times per key, pruned as it goes."""

    def __init__(self) -> None:
        self._times: dict[str, deque[float]] = {}

    def take(self, key: str, limit: int, window: float, now: float) -> float:
        times = self._times.get(key)
        if times is None:
            if len(self._times) >= MAX_KEYS:
                self._prune(now, window)
            times = self._times[key] = deque()
        while times and times[0] <= now - window:
            times.popleft()
        if len(times) >= limit:
            return max(1e-3, times[-limit] + window - now)
        times.append(now)
        return 0.0

    def give_back(self, key: str, now: float) -> None:
        times = self._times.get(key)
        if times and now in times:
            times.remove(now)

    def clear(self, key: str) -> None:
        self._times.pop(key, None)

    def _prune(self, now: float, window: float) -> None:
        for key in [k for k, t in self._times.items() if not t or t[-1] <= now - window]:
            del self._times[key]


class LoginLimiter:
    """Login and sign-up attempts (see the module docstring)."""

    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        window: float = WINDOW_SECONDS,
        *,
        max_per_username: int = MAX_PER_USERNAME,
        max_per_address: int = MAX_FAILURES_PER_ADDRESS,
        max_signups: int = MAX_SIGNUPS,
        signup_window: float = SIGNUP_WINDOW_SECONDS,
        store: AttemptStore | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.max_failures = max_failures
        self.max_per_username = max_per_username
        self.max_per_address = max_per_address
        self.window = window
        self.max_signups = max_signups
        self.signup_window = signup_window
        self.store: AttemptStore = store or MemoryAttemptStore()
        self.clock = clock

    def _keys(self, username: str, address: str) -> list[tuple[str, int]]:
        name = username.strip().lower()
        return [(f"login:pair:{name}\x1f{address}", self.max_failures),
                (f"login:user:{name}", self.max_per_username),
                (f"login:addr:{address}", self.max_per_address)]

    def attempt(self, username: str, address: str) -> tuple[int, float]:
        """Count a login attempt before checking it: ``(0, when)`` if it may go ahead (pass
        ``when`` to :meth:`succeeded`), else ``(seconds to wait, 0)`` and nothing counted."""
        now = self.clock()
        taken: list[str] = []
        for key, limit in self._keys(username, address):
            wait = self.store.take(key, limit, self.window, now)
            if wait:
                for done in taken:
                    self.store.give_back(done, now)
                return max(1, math.ceil(wait)), 0.0
            taken.append(key)
        return 0, now

    def succeeded(self, username: str, address: str, when: float) -> None:
        """The attempt made at ``when`` was right: give it back; the pair and the username
        start afresh."""
        pair, user, addr = (key for key, _ in self._keys(username, address))
        self.store.clear(pair)
        self.store.clear(user)
        self.store.give_back(addr, when)

    def signup(self, address: str) -> int:
        """Count a sign-up attempt: 0 if it may go ahead, else the seconds to wait."""
        wait = self.store.take(f"signup:addr:{address}", self.max_signups, self.signup_window,
                               self.clock())
        return max(1, math.ceil(wait)) if wait else 0


class HashGate:
    """Bounds argon2 work: ``slots`` hashes at once, ``waiting`` more queued, then 503."""

    def __init__(self, slots: int = MAX_CONCURRENT_HASHES, waiting: int = MAX_WAITING_HASHES):
        self._slots = asyncio.Semaphore(slots)
        self._waiting = waiting
        self._queued = 0

    async def run(self, work: Callable[[], object]) -> object:
        if self._queued >= self._waiting:
            raise OverloadedError("too many sign-ins at once; retry shortly", retry_after=2)
        self._queued += 1
        try:
            async with self._slots:
                return await run_in_threadpool(work)
        finally:
            self._queued -= 1
