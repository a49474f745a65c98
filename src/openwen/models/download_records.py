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

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from openwen.config import Settings

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
    path = folder / f"{job['id']}.json"
    tmp = folder / f".{job['id']}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({**job, **owner_fields()}), encoding="utf-8")
    os.replace(tmp, path)


def read_records(folder: Path) -> list[dict[str, Any]]:
    """Every readable record (a half-deleted or foreign file is skipped)."""
    records = []
    for path in folder.glob("*.json"):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and isinstance(record.get("id"), int):
            records.append(record)
    return records


def read_record(folder: Path, job_id: int) -> dict[str, Any] | None:
    try:
        record = json.loads((folder / f"{job_id}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def remove_record(folder: Path, job_id: int) -> None:
    (folder / f"{job_id}.json").unlink(missing_ok=True)
    (folder / f"{job_id}.cancel").unlink(missing_ok=True)


def ask_cancel(folder: Path, job_id: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{job_id}.cancel").touch()


def cancel_asked(folder: Path, job_id: int) -> bool:
    return (folder / f"{job_id}.cancel").exists()


def owner_alive(record: dict[str, Any]) -> bool:
    """Whether the process that wrote ``record`` still runs."""
    if record.get("owner_host") != HOST:
        return time.time() - float(record.get("written") or 0) < STALE_AFTER
    pid = record.get("owner_pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    with contextlib.suppress(OSError):  # a zombie is gone for our purposes
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def remove_cancel(folder: Path, job_id: int) -> None:
    (folder / f"{job_id}.cancel").unlink(missing_ok=True)
