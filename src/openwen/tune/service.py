"""Creating a training job: every check that can fail happens here, before anything is queued.

The CLI and the HTTP API both call :func:`create_job`; it validates the name, the base model, its
architecture, the dataset (parsed, rendered and tokenised exactly as the runner will) and the free
disk space, then queues the job and makes sure a runner is working the queue.
"""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openwen.config import Settings
from openwen.models.store import ModelStore
from openwen.tune.data import parse_jsonl, prepare
from openwen.tune.errors import TuneError
from openwen.tune.jobs import Job, JobStore, derivatives_root
from openwen.tune.train import TrainSettings

MIN_FREE_BYTES = 64 * 2**20  # beyond the adapter itself: logs, status files, the evaluation
NEEDED = ("torch", "transformers", "peft")


@dataclass(frozen=True)
class Created:
    job: Job
    warnings: list[str]
    n_train: int
    n_heldout: int


def check_installed() -> None:
    missing = [m for m in NEEDED if importlib.util.find_spec(m) is None]
    if missing:
        raise TuneError(f"training needs {', '.join(missing)}: install openwen's 'tune' extra "
                        "(pip install 'openwen[tune]')")


def adapter_bytes(meta_fields: dict[str, Any], arch: str, s: TrainSettings) -> int:
    """An upper estimate of the adapter file: rank x (n_in + n_out) floats per target and layer."""
    n_layers = int(meta_fields.get(f"{arch}.block_count") or 32)
    n_embd = int(meta_fields.get(f"{arch}.embedding_length") or 4096)
    n_ff = int(meta_fields.get(f"{arch}.feed_forward_length") or 4 * n_embd)
    widest = max(n_embd, n_ff)
    return n_layers * len(s.target_modules) * s.rank * (n_embd + widest) * 4


def check_disk(settings: Settings, needed: int) -> None:
    folder = settings.home
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    want = needed + max(MIN_FREE_BYTES, settings.tune_min_free_mb * 2**20)
    if free < want:
        raise TuneError(f"not enough free disk space in {folder}: {free / 2**20:.0f} MiB free, "
                        f"training needs about {want / 2**20:.0f} MiB")


def create_job(settings: Settings, *, name: str, base: str, data: bytes, data_name: str,
               train: TrainSettings, owner: str | None = None,
               source: dict[str, Any] | None = None, merge: bool = False) -> Created:
    """Validate everything, then queue the job and start (or wake) the runner. ``source``
    says where a dataset built from the store came from (kept in the job)."""
    train.validate()
    store = ModelStore(settings)
    jobs = JobStore(settings)
    jobs.check_name(name, store.names())
    if merge:
        check_merge_name(settings, merged_name_for(name))
    model = store.resolve(base)
    if model.adapter is not None:
        raise TuneError(f"'{model.name}' is itself a derivative; train on its base "
                        f"'{model.base}' instead", )
    if model.metadata is None:
        raise TuneError(f"cannot read the base model '{model.name}': {model.problem}")
    arch = model.metadata.architecture or "?"
    check_installed()
    from openwen.tune.train import supported_architectures

    supported = supported_architectures()
    if arch not in supported:
        raise TuneError(f"cannot train on '{model.name}': its architecture '{arch}' cannot be "
                        f"loaded for training; supported: {', '.join(supported)}")
    raw = parse_jsonl(data, name=data_name)
    from openwen.tune.tokens import GGUFTokenizer

    tok = GGUFTokenizer(model.path)
    try:
        prepared = prepare(raw, tok.format, tok, max_length=train.max_length,
                           holdout=train.holdout, seed=train.seed)
    finally:
        tok.close()
    merged_bytes = int(model.size * 1.5) if merge else 0  # dequantised weights grow
    check_disk(settings, adapter_bytes(model.metadata.fields, arch, train) + merged_bytes)
    spec = {
        "base": model.name, "base_path": str(model.path), "architecture": arch,
        "dataset": raw.name, "dataset_sha256": raw.sha256, "examples": len(raw.examples),
        "settings": train.to_dict(), "owner": owner,
        "base_repo": model.repo, "source": source or {"kind": "file"}, "merge": merge,
    }
    job = jobs.add(name, spec, data)
    jobs.start_runner()
    return Created(job=job, warnings=prepared.warnings, n_train=len(prepared.train),
                   n_heldout=len(prepared.heldout))


def derivative_folder(settings: Settings, name: str) -> Path:
    return derivatives_root(settings) / name


def merged_name_for(name: str) -> str:
    return f"{name}-merged"


def check_merge_name(settings: Settings, merged: str) -> None:
    """A merged model's name must be free (as a model and as a job)."""
    JobStore(settings).check_name(merged, ModelStore(settings).names())


def merge_job(settings: Settings, name: str, merged: str | None = None) -> dict[str, Any]:
    """Merge the finished job ``name``'s adapter into a full GGUF in the model store, named
    ``merged`` (default ``<name>-merged``); records it in the job and returns what was made."""
    from openwen.models.derivatives import list_derivatives
    from openwen.tune.merge import merge_adapter

    jobs = JobStore(settings)
    job = jobs.get(name)
    if job.state != "done":
        raise TuneError(f"job '{name}' is {job.state}; only a finished job can be merged")
    found = [d for d in list_derivatives(settings.home) if d.name == name]
    if not found:
        raise TuneError(f"the derivative '{name}' is gone; train it again")
    merged = merged or merged_name_for(name)
    check_merge_name(settings, merged)
    d = found[0]
    check_disk(settings, int(d.base_path.stat().st_size * 1.5))
    result = merge_adapter(d.base_path, d.adapter, settings.models_path, merged)
    info = {"name": result.name, "path": str(result.path), "size": result.size,
            "merged_tensors": result.merged_tensors}
    jobs.record(name, merged=info)
    return info
