"""Model downloads that run on the server in the background (the web app's Models page).

    manager = Downloads(settings)
    job = manager.start("qwen3.5:4b")      # returns at once; a worker thread pulls
    manager.list()                          # every job with bytes, total, speed, ETA, state
    manager.cancel(job.id)                  # stops; the partial file stays for a resume

A job is one :func:`openwen.models.pull.pull` in its own thread. Its state lives on the
server, in memory and in ``<home>/downloads/`` (:mod:`openwen.models.download_records`), so a
reloaded page sees the same progress and every worker of ``openwen serve --workers N`` lists,
cancels and dismisses the same jobs; starting the same model again after a cancel, a failure
or a killed server resumes from the partial file. Before it starts, a job checks the disk has
room for the whole download (the hub's listing says how big it is). ``on_done`` is called with
the job when a model finished (the web app refreshes its model list then).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from openwen.config import Settings
from openwen.errors import InvalidRequestError, NotFoundError, OpenwenError
from openwen.models import download_records as records
from openwen.models.pull import PullProgress, PullResult, parse_spec, pull

log = logging.getLogger(__name__)

State = Literal["queued", "running", "verifying", "done", "error", "cancelled"]
INTERRUPTED = ("the server process that ran this download stopped; start it again to resume "
               "from what it fetched")
SPEED_WINDOW = 5.0  # seconds of history the speed is measured over
MAX_FINISHED = 20


class Cancelled(Exception):
    """Raised inside the pull's progress callback to stop it."""


@dataclass
class Job:
    """One download. Times are ``time.time()`` seconds."""

    id: int
    spec: str
    state: State = "queued"
    file: str = ""
    completed: int = 0
    total: int | None = None
    speed: float = 0.0  # bytes per second, recent
    error: str | None = None
    error_code: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    model: str | None = None  # the name it appears under when done
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _samples: list[tuple[float, int]] = field(default_factory=list, repr=False)

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running", "verifying")

    @property
    def eta(self) -> float | None:
        if self.total is None or self.speed <= 0 or self.state != "running":
            return None
        return max(0.0, (self.total - self.completed) / self.speed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "spec": self.spec,
            "state": self.state,
            "file": self.file,
            "completed": self.completed,
            "total": self.total,
            "speed": round(self.speed),
            "eta": None if self.eta is None else round(self.eta, 1),
            "error": self.error,
            "error_code": self.error_code,
            "started": self.started,
            "finished": self.finished,
            "model": self.model,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Job:
        """Another process's job as its record shows it; an active job whose process is gone
        is an error (``interrupted``)."""
        job = cls(id=record["id"], spec=str(record.get("spec", "")))
        for name in ("state", "file", "completed", "total", "speed", "error", "error_code",
                     "started", "finished", "model"):
            if name in record:
                setattr(job, name, record[name])
        if job.active and not records.owner_alive(record):
            job.state, job.error, job.error_code = "error", INTERRUPTED, "interrupted"
            job.speed = 0.0
        return job

    def sample(self, done: int) -> None:
        now = time.monotonic()
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[0][0] > SPEED_WINDOW:
            self._samples.pop(0)
        first_t, first_done = self._samples[0]
        if now > first_t:
            self.speed = max(0.0, (done - first_done) / (now - first_t))


def error_code(message: str) -> str:
    """A short code the web app turns into a translated message."""
    text = message.lower()
    if "already being downloaded" in text:
        return "busy"
    if "cannot reach" in text:
        return "no_network"
    if "not found" in text or "http 404" in text:
        return "not_found"
    if "disk space" in text:
        return "disk_full"
    if "checksum" in text or "not a usable gguf" in text or "downloaded" in text:
        return "corrupt"
    if "refused access" in text:
        return "forbidden"
    return "failed"


class Downloads:
    """The server's background downloads (thread-safe; shared with the host's other server
    processes through their records)."""

    def __init__(self, settings: Settings, *, on_done: Callable[[Job], None] | None = None,
                 pull_kwargs: dict[str, Any] | None = None):
        self.settings = settings
        self.on_done = on_done
        self.pull_kwargs = pull_kwargs or {}
        self._jobs: dict[int, Job] = {}  # the jobs this process runs
        self._written: dict[int, float] = {}
        self._folder = records.records_dir(settings)
        self._lock = threading.Lock()

    def list(self) -> list[Job]:
        """This process's jobs and the other processes' (from their records)."""
        with self._lock:
            own = dict(self._jobs)
        others = [Job.from_record(r) for r in records.read_records(self._folder)
                  if r["id"] not in own]
        return sorted([*own.values(), *others], key=lambda j: (j.started, j.id))

    def get(self, job_id: int) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            record = records.read_record(self._folder, job_id)
            job = Job.from_record(record) if record is not None else None
        if job is None:
            raise NotFoundError(f"no download {job_id}", param="id")
        return job

    def start(self, spec: str) -> Job:
        """Start pulling ``spec`` (a catalog name or ``owner/repo[:file]``); the running job
        when that model is already downloading (in this process or another)."""
        spec = spec.strip()
        parse_spec(spec)  # a bad name fails here, before any thread starts
        for running in self.list():  # this process's jobs and the others'
            if running.spec == spec and running.active:
                return running
        with self._lock:
            self._forget_old()
            job = Job(id=secrets.randbelow(2**52) + 1, spec=spec)
            self._jobs[job.id] = job
        self._write(job)
        thread = threading.Thread(target=self._run, args=(job,), daemon=True,
                                  name=f"openwen-pull-{job.id}")
        thread.start()
        return job

    def cancel(self, job_id: int) -> Job:
        job = self.get(job_id)
        if not job.active:
            raise InvalidRequestError(f"download {job_id} is not running ({job.state})",
                                      param="id")
        if job_id in self._jobs:
            job.cancel.set()
        else:  # another process runs it: it stops at its next progress report
            records.ask_cancel(self._folder, job_id)
        return job

    def dismiss(self, job_id: int) -> None:
        """Forget a finished job (the list shows it until then)."""
        job = self.get(job_id)
        if job.active:
            raise InvalidRequestError("cancel the download first", param="id")
        with self._lock:
            self._jobs.pop(job_id, None)
        records.remove_record(self._folder, job_id)

    def cancel_all(self) -> None:
        with self._lock:
            own = list(self._jobs.values())
        for job in own:
            job.cancel.set()

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if not j.active]
        for job in sorted(finished, key=lambda j: j.id)[:-MAX_FINISHED or None]:
            self._jobs.pop(job.id, None)
            self._written.pop(job.id, None)
        done = [r for r in records.read_records(self._folder)
                if r.get("state") in ("done", "error", "cancelled")]
        done.sort(key=lambda r: float(r.get("finished") or 0))
        for record in done[:-MAX_FINISHED or None]:
            records.remove_record(self._folder, record["id"])

    def _write(self, job: Job, *, throttle: bool = False) -> None:
        """Write ``job``'s record (for progress, at most every ``WRITE_EVERY`` s); a cancel
        another process asked for is picked up here."""
        now = time.monotonic()
        if throttle and now - self._written.get(job.id, 0.0) < records.WRITE_EVERY:
            return
        self._written[job.id] = now
        if job.active and records.cancel_asked(self._folder, job.id):
            job.cancel.set()
        try:
            records.write_record(self._folder, job.to_dict())
        except OSError as exc:  # progress stays visible on this process at least
            log.warning("cannot write the record of download %s: %s", job.id, exc)

    # -- the worker thread -----------------------------------------------------------------------

    def _progress(self, job: Job, report: PullProgress) -> None:
        if job.cancel.is_set():
            raise Cancelled()
        job.file = report.file
        job.completed, job.total = report.completed, report.total
        job.state = "verifying" if report.status == "verify" else "running"
        job.sample(report.completed)
        self._write(job, throttle=True)

    def _run(self, job: Job) -> None:
        job.state = "running"
        self._write(job)
        state: State
        try:
            result: PullResult = pull(job.spec, self.settings,
                                      lambda p: self._progress(job, p), **self.pull_kwargs)
        except Cancelled:
            state = "cancelled"
        except OpenwenError as exc:
            state, job.error, job.error_code = "error", exc.message, error_code(exc.message)
            log.info("download of %s failed: %s", job.spec, exc.message)
        except Exception as exc:  # never leave a job "running" forever
            log.exception("download of %s failed", job.spec)
            state, job.error, job.error_code = "error", f"{type(exc).__name__}", "failed"
        else:
            state, job.completed = "done", job.total or job.completed
            job.model = self._name_of(result)
        job.finished, job.speed = time.time(), 0.0
        if state == "done" and self.on_done is not None:
            try:
                self.on_done(job)
            except Exception:
                log.exception("after download of %s", job.spec)
        job.state = state  # last: whoever sees the job finished sees all of it
        self._write(job)
        records.remove_cancel(self._folder, job.id)

    def _name_of(self, result: PullResult) -> str | None:
        from openwen.models.store import ModelStore

        for model in ModelStore(self.settings).list():
            if model.path == result.path:
                return model.name
        return None

