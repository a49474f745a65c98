"""Per-request stage timestamps, for finding where a request's time to first token goes.

Off unless ``OPENWEN_TRACE_STAGES`` names a file (read once, at import). When on, a generating
route calls :func:`begin` as it receives a request; the layers below mark the stages they pass
(:func:`mark`: the body parsed, the prompt rendered and tokenised, the request admitted to the
batch, its first evaluation, its first token, the hand-off to the event loop, the first bytes
sent), from any thread, and the response appends one JSON line with the stage times in
microseconds after ``received`` (:func:`finish`), plus the time the garbage collector ran
meanwhile. ``bench/api.py --trace-stages`` reads the file.

The stages live in a :class:`contextvars.ContextVar` holding a dict: tasks and worker threads
started from the request copy the context, so they see (and fill) the same dict; the batch's
owner thread gets it from the job (:func:`current`). When off, every call is a check of one
global and returns.
"""

from __future__ import annotations

import gc
import json
import os
import threading
import time
from contextvars import ContextVar
from typing import Any

PATH = os.environ.get("OPENWEN_TRACE_STAGES") or None
Stages = dict[str, float]

_current: ContextVar[Stages | None] = ContextVar("openwen_stages", default=None)
_lock = threading.Lock()
_gc = {"seconds": 0.0, "runs": 0.0, "started": 0.0}


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc["started"] = time.perf_counter()
    else:
        _gc["seconds"] += time.perf_counter() - _gc["started"]
        _gc["runs"] += 1


if PATH is not None:
    gc.callbacks.append(_on_gc)


def enabled() -> bool:
    return PATH is not None


def begin(received: float) -> None:
    """Start recording the current request's stages (``received``: its perf_counter time)."""
    if PATH is None:
        return
    _current.set({"received": received, "_gc_s": _gc["seconds"], "_gc_n": _gc["runs"]})


def current() -> Stages | None:
    """The current request's stages (to carry into another thread), or None when off."""
    return _current.get() if PATH is not None else None


def mark(name: str, stages: Stages | None = None) -> None:
    """Record that the request reached ``name`` now (the first time only)."""
    if PATH is None:
        return
    target = stages if stages is not None else _current.get()
    if target is not None and name not in target:
        target[name] = time.perf_counter()


def finish(stages: Stages | None = None) -> None:
    """Append the request's stages to the trace file, once."""
    if PATH is None:
        return
    target = stages if stages is not None else _current.get()
    if target is None or "_written" in target:
        return
    target["_written"] = 1.0
    start = target["received"]
    record: dict[str, Any] = {k: round((v - start) * 1e6) for k, v in target.items()
                              if not k.startswith("_")}
    record["gc_us"] = round((_gc["seconds"] - target["_gc_s"]) * 1e6)
    record["gc_runs"] = int(_gc["runs"] - target["_gc_n"])
    with _lock, open(PATH, "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")
