"""The Responses store on open: old responses expire, interrupted ones are marked failed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from openwen.config import Settings
from openwen.errors import NotFoundError
from openwen.server.responses.state import INTERRUPTED, ResponsesState
from openwen.storage.response_models import StoredResponse


async def test_retention_and_recovery_when_the_store_opens(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, responses_retention_days=7)
    first = ResponsesState(settings)
    for rid, status in (("resp_old", "completed"), ("resp_new", "completed"),
                        ("resp_running", "in_progress")):
        await first.call("save", None, rid, status=status, body={"id": rid, "status": status})
    repo = first.repo()
    with repo.db.write() as s:
        s.execute(update(StoredResponse).where(StoredResponse.id == "resp_old")
                  .values(created_at=datetime.now(UTC) - timedelta(days=8)))
    await first.aclose()

    second = ResponsesState(settings)  # as after a restart
    try:
        with pytest.raises(NotFoundError):
            await second.get(None, "resp_old")
        assert (await second.get(None, "resp_new"))["status"] == "completed"
        running = await second.get(None, "resp_running")
        assert running["status"] == "failed" and running["error"]["message"] == INTERRUPTED
    finally:
        await second.aclose()


async def test_zero_keeps_everything(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, responses_retention_days=0)
    state = ResponsesState(settings)
    try:
        await state.call("save", None, "resp_a", status="completed", body={"id": "resp_a"})
        with state.repo().db.write() as s:
            s.execute(update(StoredResponse).values(
                created_at=datetime.now(UTC) - timedelta(days=3650)))
        state._purged = 0.0
        state.repo()
        assert (await state.get(None, "resp_a"))["id"] == "resp_a"
    finally:
        await state.aclose()
