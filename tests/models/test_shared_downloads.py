"""Background downloads shared by the server processes of one host (``serve --workers N``).

A second, real Python process runs a download against the hub stand-in, as another worker
would; this process's :class:`Downloads` must see it, not start it twice, cancel it, and show
it interrupted when that process is killed; starting it again then resumes its partial file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from openwen.config import Settings
from openwen.errors import InvalidRequestError
from openwen.models import download_records as records
from openwen.models.downloads import Downloads, Job
from openwen.models.pull import _exclusive

REPO = "Qwen/tiny-GGUF"
FILE = "tiny-Q4_K_M.gguf"

WORKER = textwrap.dedent("""
    import sys, time
    from openwen.config import load_settings
    from openwen.models.downloads import Downloads
    settings = load_settings(models_dir=sys.argv[1], hub_endpoint=sys.argv[2]).settings
    downloads = Downloads(settings, pull_kwargs={"retry_delay": 0})
    job = downloads.start(sys.argv[3])
    print(job.id, flush=True)
    while job.active:
        time.sleep(0.02)
    print(job.state, flush=True)
""")


@pytest.fixture
def big(hub, tmp_path: Path, make_gguf) -> bytes:
    data: bytes = make_gguf(tmp_path / "big.gguf", payload_floats=2_000_000).read_bytes()
    hub.add(REPO, {FILE: data})
    hub.throttle = 0.01  # seconds per 64 KiB: a few seconds in all
    return data


@contextlib.contextmanager
def other_worker(hub_settings: Settings) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """Another process downloading ``REPO``, and its job's id."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(hub_settings.models_path),
         str(hub_settings.hub_endpoint), REPO],
        stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert worker.stdout is not None
        yield worker, int(worker.stdout.readline())
    finally:
        worker.kill()
        worker.wait(timeout=30)


def seen_running(downloads: Downloads, job_id: int, at_least: int = 1 << 20) -> Job:
    end = time.monotonic() + 30
    while True:
        job = downloads.get(job_id)
        if job.state == "running" and job.completed >= at_least:
            return job
        assert time.monotonic() < end, job
        time.sleep(0.05)


def test_a_download_another_worker_runs_is_listed_cancelled_and_not_started_twice(
    hub, hub_settings: Settings, big: bytes
) -> None:
    with other_worker(hub_settings) as (worker, job_id):
        here = Downloads(hub_settings)
        job = seen_running(here, job_id)
        assert job.total == len(big) and job.speed > 0 and job.eta is not None
        assert [j.id for j in here.list()] == [job_id]
        assert here.start(REPO).id == job_id  # not a second download of the same file
        with pytest.raises(InvalidRequestError, match="cancel the download first"):
            here.dismiss(job_id)
        here.cancel(job_id)
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "cancelled"
        assert worker.wait(timeout=30) == 0
    assert here.get(job_id).state == "cancelled"
    here.dismiss(job_id)
    assert here.list() == []
    assert len(hub.gets(FILE)) == 1  # one download only, no second one was started


def test_a_killed_worker_s_download_shows_interrupted_and_resumes(
    hub, hub_settings: Settings, big: bytes
) -> None:
    with other_worker(hub_settings) as (worker, job_id):
        here = Downloads(hub_settings, pull_kwargs={"retry_delay": 0})
        seen_running(here, job_id, at_least=2 << 20)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    gone = here.get(job_id)
    assert gone.state == "error" and gone.error_code == "interrupted", gone
    part = hub_settings.models_path / "Qwen" / "tiny-GGUF" / (FILE + ".part")
    kept = part.stat().st_size
    hub.throttle = 0
    again = here.start(REPO)  # the interrupted job is not active: a new one, resuming
    assert again.id != job_id
    end = time.monotonic() + 60
    while again.active:
        assert time.monotonic() < end
        time.sleep(0.02)
    assert again.state == "done", again.error
    assert int(hub.gets(FILE)[-1].headers["range"][6:-1]) >= kept
    assert (part.parent / FILE).read_bytes() == big


def test_a_file_another_process_is_fetching_is_not_written_twice(
    hub, hub_settings: Settings, big: bytes
) -> None:
    dest = hub_settings.models_path / "Qwen" / "tiny-GGUF" / FILE
    dest.parent.mkdir(parents=True)
    downloads = Downloads(hub_settings, pull_kwargs={"retry_delay": 0, "retries": 0})
    with _exclusive(dest, FILE):  # as `openwen pull` in another process would hold it
        job = downloads.start(REPO)
        end = time.monotonic() + 30
        while job.active:
            assert time.monotonic() < end
            time.sleep(0.02)
    assert job.state == "error" and job.error_code == "busy", job.error
    assert "already being downloaded" in (job.error or "")
    assert not dest.with_name(FILE + ".part").exists()


def test_unreadable_records_are_skipped(hub_settings: Settings) -> None:
    folder = records.records_dir(hub_settings)
    folder.mkdir(parents=True)
    (folder / "1.json").write_text("{half a record")
    (folder / "2.json").write_text('["not", "a", "record"]')
    assert Downloads(hub_settings).list() == []
