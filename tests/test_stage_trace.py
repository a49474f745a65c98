"""openwen.stage_trace: off by default; when on, one JSON line of stage times per request,
filled from worker threads through the context the request started."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from openwen import stage_trace


def test_off_records_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stage_trace, "PATH", None)
    stage_trace.begin(0.0)
    stage_trace.mark("parsed")
    stage_trace.finish()
    assert stage_trace.current() is None and not stage_trace.enabled()


def test_stages_from_tasks_and_threads_make_one_line(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "stages.jsonl"
    monkeypatch.setattr(stage_trace, "PATH", str(out))

    async def request() -> None:
        import time

        stage_trace.begin(time.perf_counter())
        await asyncio.to_thread(stage_trace.mark, "in_worker")  # the context is copied
        stages = stage_trace.current()
        owner = threading.Thread(target=stage_trace.mark, args=("in_owner", stages))
        owner.start()
        owner.join()
        await asyncio.create_task(asyncio.sleep(0))
        stage_trace.mark("in_worker")  # a second mark of a stage keeps the first time
        stage_trace.finish()
        stage_trace.finish()  # written once

    asyncio.run(request())
    lines = out.read_text().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["received"] == 0
    assert 0 <= record["in_worker"] <= record["in_owner"]
    assert record["gc_runs"] >= 0 and record["gc_us"] >= 0
