"""Download jobs on disk, shared by every server process of one host.

``openwen serve --workers N`` runs N processes over one model store; a download runs in one of
them, while the Models page's next poll, cancel or reload may land on any other. Each process
therefore writes its jobs to ``<home>/downloads/<id>.json`` (replaced atomically on every change
of state and at most every ``WRITE_EVERY`` seconds of progress) and reads the others' from
there:

- owner: the host and process id that runs the job. A job whose owner is gone (the process id
  no longer exists on this host, or, for another host sharing the folder, no write for
  ``STALE_AFTER`` seconds) is shown as interrupted; starting the model again resumes its
  ``.part`` file.
- cancel: ``<id>.cancel`` present once any process asked; the owner stops at its next progress
  report.

The model store itself is per host, so downloads are too: instances on other hosts neither see
nor need them.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

from openwen.config import Settings
from openwen.host_files import pid_alive, read_json, write_json

WRITE_EVERY = 0.5  # seconds between progress writes of one job
STALE_AFTER = 60.0  # seconds without a write after which another host's job counts as gone
HOST = socket.gethostname()


def records_dir(settings: Settings) -> Path:
    return settings.home / "downloads"


def owner_fields() -> dict[str, Any]:
    return {"owner_host": HOST, "owner_pid": os.getpid(), "written": time.time()}


def write_record(folder: Path, job: dict[str, Any]) -> None:
    """Replace ``<id>.json`` atomically (a reader never sees half a record)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / f"{job['id']}.json", {**job, **owner_fields()})


def read_records(folder: Path) -> list[dict[str, Any]]:
    """Every readable record (a half-deleted or foreign file is skipped)."""
    records = (read_json(path) for path in folder.glob("*.json"))
    return [r for r in records if isinstance(r.get("id"), int)]


def read_record(folder: Path, job_id: int) -> dict[str, Any] | None:
    return read_json(folder / f"{job_id}.json") or None


def remove_record(folder: Path, job_id: int) -> None:
    (folder / f"{job_id}.json").unlink(missing_ok=True)
    remove_cancel(folder, job_id)


def ask_cancel(folder: Path, job_id: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{job_id}.cancel").touch()


def cancel_asked(folder: Path, job_id: int) -> bool:
    return (folder / f"{job_id}.cancel").exists()


def remove_cancel(folder: Path, job_id: int) -> None:
    (folder / f"{job_id}.cancel").unlink(missing_ok=True)


def owner_alive(record: dict[str, Any]) -> bool:
    """Whether the process that wrote ``record`` still runs."""
    if record.get("owner_host") != HOST:
        return time.time() - float(record.get("written") or 0) < STALE_AFTER
    pid = record.get("owner_pid")
    return isinstance(pid, int) and pid_alive(pid)
