"""One owner thread per loaded model, a bounded queue in front of it, events handed to asyncio.

llama.cpp contexts are not thread-safe, so every call on a model runs on its worker thread. A job
is a
function that receives an ``emit`` callback and a cancellation event; the worker runs jobs one at a
time in arrival order. When the queue is full, ``submit`` raises :class:`OverloadedError` at once.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from openwen.errors import OverloadedError

log = logging.getLogger(__name__)

Emit = Callable[[Any], None]
JobFn = Callable[[Emit, threading.Event], None]

_END = object()


@dataclass
class Job:
    fn: JobFn
    loop: asyncio.AbstractEventLoop | None = None
    out: asyncio.Queue[Any] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    submitted: float = field(default_factory=time.perf_counter)
    started: float | None = None

    def emit(self, item: Any) -> None:
        if self.loop is not None and self.out is not None and not self.cancel.is_set():
            self.loop.call_soon_threadsafe(self.out.put_nowait, item)


class ModelWorker:
    """Owns one model on one thread; runs submitted jobs in order."""

    def __init__(self, name: str, max_queue: int = 16):
        self.name = name
        self._jobs: queue.Queue[Job | None] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name=f"openwen-{name}", daemon=True)
        self._running = 0
        self._thread.start()

    @property
    def queue_depth(self) -> int:
        """Jobs waiting plus the one running."""
        return self._jobs.qsize() + self._running

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the worker thread and wait for it (blocking; for setup and teardown)."""
        done = threading.Event()
        box: dict[str, Any] = {}

        def job(_emit: Emit, _cancel: threading.Event) -> None:
            try:
                box["value"] = fn()
            except BaseException as exc:  # handed to the caller
                box["error"] = exc
            finally:
                done.set()

        self._jobs.put(Job(job))
        done.wait()
        if "error" in box:
            raise box["error"]
        return box.get("value")

    async def stream(self, fn: JobFn) -> AsyncIterator[Any]:
        """Submit ``fn`` and yield what it emits. Closing the iterator cancels the job."""
        out: asyncio.Queue[Any] = asyncio.Queue()
        job = Job(fn, asyncio.get_running_loop(), out)
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            raise OverloadedError(
                f"model '{self.name}' has {self._jobs.qsize()} requests waiting; retry shortly"
            ) from None
        try:
            while True:
                item = await out.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            job.cancel.set()

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            if job.cancel.is_set():
                continue
            self._running = 1
            job.started = time.perf_counter()
            try:
                job.fn(job.emit, job.cancel)
            except BaseException as exc:  # delivered to the awaiting consumer
                if not isinstance(exc, Exception):
                    log.exception("worker %s: fatal error", self.name)
                job.emit(exc)
            finally:
                self._running = 0
                job.emit(_END)
