"""The Responses API's shared state: the response store, the runs in progress, retention.

Responses live in the configured database (``database_url``, SQLite or PostgreSQL), opened and
migrated on first use. At that point responses a stopped process left running are marked
failed, and responses older than ``responses_retention_days`` (0 keeps them) are deleted, again
at most once an hour after.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from openwen.config import Settings
from openwen.server.errors import ShuttingDownError
from openwen.server.responses.render import ResponseBuilder
from openwen.server.responses.runs import ResponseRun
from openwen.storage.db import Database
from openwen.storage.responses import ResponseRecord, ResponseRepo

log = logging.getLogger(__name__)

PURGE_EVERY = 3600.0  # seconds
INTERRUPTED = "the server stopped before this response finished"


class ResponsesState:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.runs: dict[str, ResponseRun] = {}
        self._db: Database | None = None
        self._repo: ResponseRepo | None = None
        self._lock = threading.Lock()
        self._purged = 0.0

    def repo(self) -> ResponseRepo:
        """The store (blocking: opens, migrates and recovers on first use)."""
        with self._lock:
            if self._repo is None:
                db = Database(self.settings.database)
                db.upgrade()
                repo = ResponseRepo(db)
                count = repo.recover_interrupted(INTERRUPTED)
                if count:
                    log.info("marked %d interrupted response(s) failed", count)
                self._db, self._repo = db, repo
            repo = self._repo
        self._purge(repo)
        return repo

    def _purge(self, repo: ResponseRepo) -> None:
        days = self.settings.responses_retention_days
        now = time.monotonic()
        if days <= 0 or (self._purged and now - self._purged < PURGE_EVERY):
            return
        self._purged = now
        removed = repo.purge_before(datetime.now(UTC) - timedelta(days=days))
        if removed:
            log.info("deleted %d response(s) older than %s days", removed, days)

    async def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Run a store method in a worker thread."""
        def run() -> Any:
            return getattr(self.repo(), name)(*args, **kwargs)

        return await asyncio.to_thread(run)

    async def save(self, owner: int | None, builder: ResponseBuilder, **fields: Any) -> None:
        await self.call("save", owner, builder.id, status=builder.status,
                        body=builder.snapshot(), **fields)

    async def get(self, owner: int | None, response_id: str) -> dict[str, Any]:
        """The response as it stands: live while it runs here, else as stored."""
        run = self.runs.get(response_id)
        if run is not None and run.owner == owner:
            return run.builder.snapshot()
        record: ResponseRecord = await self.call("get", owner, response_id)
        return record.body

    def track(self, run: ResponseRun) -> None:
        self.runs[run.id] = run
        run.task.add_done_callback(lambda _: self.runs.pop(run.id, None))

    async def aclose(self) -> None:
        """Stop every run (saved as failed: the server shuts down) and close the store."""
        runs = list(self.runs.values())
        for run in runs:
            run.stop(ShuttingDownError("the server shut down before this response finished"))
        await asyncio.gather(*(run.task for run in runs), return_exceptions=True)
        with self._lock:
            db, self._db, self._repo = self._db, None, None
        if db is not None:
            db.dispose()
