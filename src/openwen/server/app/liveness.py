"""This instance's heartbeat, and the sweep that marks the answers of dead instances.

At start the instance registers (a random id, host and process id) and sweeps once; then every
``lease / 4`` seconds it refreshes its heartbeat and sweeps again, so an instance killed
mid-answer has its partial answers marked ``incomplete`` by a survivor within about
``1.25 * lease`` seconds. At a clean shutdown, after its answers are saved, it removes its row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from openwen.storage import Storage

log = logging.getLogger(__name__)


class Liveness:
    def __init__(self, storage: Storage, instance_id: str, lease: float,
                 sweep: Callable[[], int]):
        self.storage = storage
        self.instance_id = instance_id
        self.lease = lease
        self.interval = max(0.5, lease / 4)
        self._sweep = sweep
        self._task: asyncio.Task[None] | None = None

    def register(self) -> None:
        """Blocking: the instance row, then a first sweep."""
        self.storage.instances.register(self.instance_id)
        self._sweep()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="openwen-liveness")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                if not await asyncio.to_thread(self.storage.instances.heartbeat,
                                               self.instance_id):
                    log.warning("instance %s had been taken for dead; registered again",
                                self.instance_id)
                await asyncio.to_thread(self._sweep)
            except Exception:  # a database hiccup must not end the heartbeat
                log.warning("heartbeat of instance %s failed", self.instance_id, exc_info=True)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await asyncio.to_thread(self.storage.instances.remove, self.instance_id)
        except Exception:
            log.warning("could not remove instance %s", self.instance_id, exc_info=True)
