"""Training jobs on disk: the queue the runner works through and the server and CLI read.

Layout under ``<home>/tune/jobs/<name>/``:

- ``job.json``: the request (base, dataset, settings), written once when the job is created;
- ``data.jsonl``: a copy of the dataset, so the job does not depend on the uploaded file;
- ``status.json``: written only by the runner (state, progress, loss curve, evaluation, error),
  always replaced atomically;
- ``cancel``: present once someone asked to cancel;
- ``work/``: the runner's output while it trains.

A finished derivative is published by renaming its complete ``work/`` folder to
``<home>/derivatives/<name>/`` (one atomic rename), so a cancelled, failed or killed job never
leaves a half-written model where the model store looks. One runner trains at a time: it holds
``<home>/tune/runner.lock``; a job whose status says running while nobody holds the lock was
interrupted (its process died), and shows so.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openwen.config import Settings
from openwen.host_files import pid_alive, read_json, write_json
from openwen.tune.errors import JobNotFoundError, TuneError

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
STATES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
FINAL = ("done", "failed", "cancelled", "interrupted")


def tune_root(settings: Settings) -> Path:
    return settings.home / "tune"


def derivatives_root(settings: Settings) -> Path:
    return settings.home / "derivatives"


@dataclass
class Job:
    """A job as the CLI and the server show it."""

    name: str
    folder: Path
    spec: dict[str, Any]
    status: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> str:
        return str(self.status.get("state", "queued"))

    @property
    def cancel_requested(self) -> bool:
        return (self.folder / "cancel").exists()

    @property
    def data_path(self) -> Path:
        return self.folder / "data.jsonl"

    @property
    def work(self) -> Path:
        return self.folder / "work"

    def to_dict(self) -> dict[str, Any]:
        status = {k: v for k, v in self.status.items() if k != "state"}
        return {"name": self.name, "state": self.state, "cancel_requested": self.cancel_requested,
                **{k: v for k, v in self.spec.items() if k != "name"}, **status}


class JobStore:
    """Creates, lists and cancels jobs; starts the runner when there is work."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.root = tune_root(settings)
        self.jobs_dir = self.root / "jobs"
        self.lock_path = self.root / "runner.lock"

    # -- reading --------------------------------------------------------------------------------

    def names(self) -> list[str]:
        if not self.jobs_dir.is_dir():
            return []
        return sorted(p.name for p in self.jobs_dir.iterdir() if (p / "job.json").is_file())

    def get(self, name: str) -> Job:
        folder = self.jobs_dir / name
        spec = read_json(folder / "job.json") if NAME_RE.match(name) else {}
        if not spec:
            raise JobNotFoundError(name, self.names())
        job = Job(name=name, folder=folder, spec=spec, status=read_json(folder / "status.json"))
        if job.state == "running" and not (self.runner_alive()
                                           and pid_alive(int(job.status.get("pid") or 0))):
            job = self._interrupted(job)
        return job

    def list(self) -> builtins.list[Job]:
        jobs = []
        for name in self.names():
            with contextlib.suppress(JobNotFoundError):
                jobs.append(self.get(name))
        return sorted(jobs, key=lambda j: j.spec.get("created", 0))

    def runner_alive(self) -> bool:
        """Whether a runner holds the lock (a probe: taking it means nobody does)."""
        if not self.lock_path.exists():
            return False
        with self.lock_path.open("a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh, fcntl.LOCK_UN)
            return False

    def _interrupted(self, job: Job) -> Job:
        """A running job whose process is gone: published (it finished) or interrupted."""
        if (derivatives_root(self.settings) / job.name / "derivative.json").is_file():
            job.status["state"] = "done"
        else:
            job.status["state"] = "interrupted"
            job.status["error"] = "the training process stopped before the job finished"
            shutil.rmtree(job.work, ignore_errors=True)
        job.status["finished"] = time.time()
        write_json(job.folder / "status.json", job.status)
        return job

    # -- changing ------------------------------------------------------------------------------

    def check_name(self, name: str, taken: builtins.list[str]) -> None:
        if not NAME_RE.match(name):
            raise TuneError(f"'{name}' is not a usable name: use 1-64 lower-case letters, digits, "
                            "'.', '_' or '-', starting with a letter or digit")
        if name in taken:
            raise TuneError(f"a model named '{name}' already exists; pick another name")
        if (self.jobs_dir / name).exists():
            raise TuneError(f"a training job named '{name}' already exists; remove it first "
                            f"(openwen tune rm {name}) or pick another name")

    def add(self, name: str, spec: dict[str, Any], data: bytes) -> Job:
        """Queue a job (its folder appears complete: built aside, then renamed in)."""
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.jobs_dir / f".{name}.{os.getpid()}.new"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        (tmp / "data.jsonl").write_bytes(data)
        write_json(tmp / "job.json", {**spec, "name": name, "created": time.time()})
        write_json(tmp / "status.json", {"state": "queued"})
        try:
            tmp.rename(self.jobs_dir / name)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise TuneError(f"a training job named '{name}' already exists") from exc
        return self.get(name)

    def cancel(self, name: str) -> Job:
        job = self.get(name)
        if job.state in FINAL:
            raise TuneError(f"job '{name}' is already {job.state}")
        (job.folder / "cancel").touch()
        if job.state == "queued" and not self.runner_alive():
            self.finish(job, "cancelled")
        return self.get(name)

    def remove(self, name: str) -> Job:
        job = self.get(name)
        if job.state in ("queued", "running"):
            raise TuneError(f"job '{name}' is {job.state}; cancel it first")
        shutil.rmtree(derivatives_root(self.settings) / name, ignore_errors=True)
        shutil.rmtree(job.folder, ignore_errors=True)
        return job

    def record(self, name: str, **extra: Any) -> Job:
        """Add ``extra`` to a finished job's status (a merge made after training)."""
        job = self.get(name)
        if job.state not in FINAL:
            raise TuneError(f"job '{name}' is {job.state}")
        job.status.update(extra)
        write_json(job.folder / "status.json", job.status)
        return job

    def finish(self, job: Job, state: str, **extra: Any) -> None:
        job.status.update(state=state, finished=time.time(), **extra)
        write_json(job.folder / "status.json", job.status)

    def next_queued(self) -> Job | None:
        for job in self.list():
            if job.state == "queued":
                return job
        return None

    # -- the runner ----------------------------------------------------------------------------

    def resume(self) -> bool:
        """Start a runner if jobs are queued and none runs (after a reboot); true if started."""
        if self.next_queued() is None or self.runner_alive():
            return False
        self.start_runner()
        return True

    @contextlib.contextmanager
    def runner_lock(self) -> Iterator[None]:
        """Held by the one runner that trains; others wait here."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self.lock_path.open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def start_runner(self) -> subprocess.Popen[bytes]:
        """A training process of its own (a new session: it outlives a stopped server)."""
        self.root.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["OPENWEN_HOME"] = str(self.settings.home)
        if self.settings.models_dir is not None:
            env["OPENWEN_MODELS_DIR"] = str(self.settings.models_dir)
        log = (self.root / "runner.log").open("ab")
        try:
            return subprocess.Popen([sys.executable, "-m", "openwen.tune.runner"], env=env,
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True)
        finally:
            log.close()
