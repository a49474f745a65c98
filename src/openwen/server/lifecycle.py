"""Graceful shutdown: refuse new answers, let streams in flight finish, end the rest cleanly.

When the server is asked to stop, :meth:`ShutdownGate.begin` is called with a grace period. New
generation requests get a 503 at once; streams already running may finish during the grace period,
after which each ends with an ``error`` event (``shutting_down``) instead of being cut off.
"""

from __future__ import annotations

import time

from openwen.server.errors import ShuttingDownError


class ShutdownGate:
    def __init__(self) -> None:
        self._deadline: float | None = None

    def begin(self, grace: float) -> None:
        if self._deadline is None:
            self._deadline = time.monotonic() + max(0.0, grace)

    @property
    def draining(self) -> bool:
        return self._deadline is not None

    def refusal(self) -> ShuttingDownError | None:
        """The error for a new request, once shutdown began."""
        return ShuttingDownError() if self.draining else None

    def stop_error(self) -> ShuttingDownError | None:
        """The error ending a stream in flight, once the grace period is over."""
        if self._deadline is not None and time.monotonic() >= self._deadline:
            return ShuttingDownError("the server is shutting down; the answer was cut short")
        return None
