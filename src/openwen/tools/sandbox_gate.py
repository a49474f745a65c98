"""How many code sandbox runs may run at once, and how many may wait.

One gate per process (:func:`gate`), shared by every user, chat and API request, whatever event
loop or thread they run on. A run beyond ``running + queued`` is refused at once with
:class:`SandboxBusy` (the tool's error says to try again), and a queued run waits at most
``queue_seconds`` before it is refused the same way: the machine is never asked for more
sandboxes than it was configured for, and no caller waits without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import AsyncIterator

from openwen.tools.base import ToolError


class SandboxBusy(ToolError):
    """Every sandbox slot is taken and the queue is full (or the wait ran out)."""


class RunGate:
    """A counting gate usable from any event loop (a plain asyncio.Semaphore binds to one)."""

    def __init__(self, running: int, queued: int, queue_seconds: float):
        self.running = running
        self.queued = queued
        self.queue_seconds = queue_seconds
        self._lock = threading.Lock()
        self._active = 0
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()

    @property
    def active(self) -> int:
        return self._active

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def _busy(self) -> SandboxBusy:
        return SandboxBusy(
            f"the code sandbox is busy ({self.running} run(s) running, {self.queued} waiting, "
            "the most this server allows); try again in a moment")

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self._acquire()
        try:
            yield
        finally:
            self._release()

    async def _acquire(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._active < self.running and not self._waiters:
                self._active += 1
                return
            if len(self._waiters) >= self.queued:
                raise self._busy()
            future: asyncio.Future[None] = loop.create_future()
            entry = (loop, future)
            self._waiters.append(entry)
        try:
            async with asyncio.timeout(self.queue_seconds):
                await future
        except BaseException as exc:
            self._abandon(entry)
            if isinstance(exc, TimeoutError):
                raise self._busy() from None
            raise

    def _abandon(self, entry: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]) -> None:
        """A waiter gave up: leave the queue, or pass on the slot handed over meanwhile."""
        with self._lock:
            if entry in self._waiters:
                self._waiters.remove(entry)
                return
        self._release()

    def _release(self) -> None:
        with self._lock:
            while self._waiters:
                loop, future = self._waiters.popleft()
                try:
                    loop.call_soon_threadsafe(_wake, future)
                except RuntimeError:  # that loop is closed: its waiter is gone
                    continue
                return  # the slot passes to that waiter: active stays the same
            self._active -= 1


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_gates: dict[tuple[int, int, float], RunGate] = {}
_gates_lock = threading.Lock()


def gate(running: int, queued: int, queue_seconds: float) -> RunGate:
    """The process-wide gate for these settings (one per distinct configuration)."""
    key = (running, queued, queue_seconds)
    with _gates_lock:
        if key not in _gates:
            _gates[key] = RunGate(running, queued, queue_seconds)
        return _gates[key]
