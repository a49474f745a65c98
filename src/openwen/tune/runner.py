"""The training process: ``python -m openwen.tune.runner`` works the job queue, one job at a time.

Started by :meth:`~openwen.tune.jobs.JobStore.start_runner` whenever a job is queued. It takes the
runner lock (a second runner waits for it, then finds the queue empty or takes the next job), and
for each queued job: tokenise the dataset, load the base from its GGUF, measure the held-out loss,
train, measure again, write the GGUF adapter, let llama.cpp answer held-out prompts with and
without it, then publish the derivative with one rename. Progress goes to the job's
``status.json`` after every step; a ``cancel`` file stops it between two steps.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
import traceback
from pathlib import Path
from typing import Any

from openwen.config import Settings, load_settings
from openwen.errors import OpenwenError
from openwen.tune.jobs import Job, JobStore, derivatives_root, write_json
from openwen.tune.train import Cancelled, Progress, TrainSettings

log = logging.getLogger("openwen.tune.runner")


def main() -> None:
    # OpenMP threads that spin while they wait for each other are 10-20x slower when other
    # processes share the cores (measured: 20 s a step instead of 1 s at load 10); passive
    # waiting costs nothing on an idle machine. Read when torch loads, so set before.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = load_settings().settings
    store = JobStore(settings)
    with store.runner_lock():
        while (job := store.next_queued()) is not None:
            run_job(settings, store, job)


def run_job(settings: Settings, store: JobStore, job: Job) -> None:
    if job.cancel_requested:
        store.finish(job, "cancelled")
        return
    log.info("training %s", job.name)
    job.status = {"state": "running", "pid": os.getpid(), "started": time.time(),
                  "phase": "preparing"}
    write_json(job.folder / "status.json", job.status)
    shutil.rmtree(job.work, ignore_errors=True)
    job.work.mkdir()
    try:
        result = _train(settings, job)
    except Cancelled:
        shutil.rmtree(job.work, ignore_errors=True)
        store.finish(job, "cancelled")
        log.info("%s cancelled", job.name)
        return
    except Exception as exc:
        shutil.rmtree(job.work, ignore_errors=True)
        message = exc.message if isinstance(exc, OpenwenError) else f"{type(exc).__name__}: {exc}"
        log.error("%s failed: %s\n%s", job.name, message, traceback.format_exc())
        store.finish(job, "failed", error=message)
        return
    target = derivatives_root(settings) / job.name
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(job.work, target)  # the one step that makes the derivative visible
    extra: dict[str, Any] = {}
    if job.spec.get("merge"):
        extra = _merge(settings, job)
    store.finish(job, "done", phase="done", eval=result["eval"], derivative=str(target),
                 **extra)
    log.info("%s done", job.name)


def _merge(settings: Settings, job: Job) -> dict[str, Any]:
    """The optional full GGUF (``--merge``); a failure leaves the derivative as it is."""
    from openwen.tune.merge import merge_adapter
    from openwen.tune.service import merged_name_for

    job.status.update(phase="merging")
    write_json(job.folder / "status.json", job.status)
    target = derivatives_root(settings) / job.name
    try:
        made = merge_adapter(Path(job.spec["base_path"]), target / "adapter.gguf",
                             settings.models_path, merged_name_for(job.name))
    except Exception as exc:
        message = exc.message if isinstance(exc, OpenwenError) else f"{type(exc).__name__}: {exc}"
        log.error("%s: merging failed: %s", job.name, message)
        return {"merge_error": message}
    return {"merged": {"name": made.name, "path": str(made.path), "size": made.size,
                       "merged_tensors": made.merged_tensors}}


class _Reporter:
    """Writes progress into status.json; raises :class:`Cancelled` once a cancel is asked."""

    def __init__(self, job: Job):
        self.job = job

    def phase(self, phase: str, **extra: Any) -> None:
        self.check()
        self.job.status.update(phase=phase, **extra)
        write_json(self.job.folder / "status.json", self.job.status)

    def step(self, p: Progress) -> None:
        self.job.status.update(phase="training", step=p.step, total_steps=p.total_steps,
                               epoch=p.epoch, loss=p.loss, tokens_per_s=p.tokens_per_s,
                               eta_s=p.eta_s, elapsed_s=p.elapsed_s, losses=p.losses)
        write_json(self.job.folder / "status.json", self.job.status)

    def cancelled(self) -> bool:
        return self.job.cancel_requested

    def check(self) -> None:
        if self.cancelled():
            raise Cancelled()


def _train(settings: Settings, job: Job) -> dict[str, Any]:
    from openwen.tune.data import read_jsonl
    from openwen.tune.tokens import GGUFTokenizer

    spec = job.spec
    s = TrainSettings.from_dict(spec["settings"])
    report = _Reporter(job)
    report.check()
    base_path = Path(spec["base_path"])
    raw = read_jsonl(job.data_path, name=spec["dataset"])
    tok = GGUFTokenizer(base_path)
    try:
        from openwen.tune.data import prepare

        data = prepare(raw, tok.format, tok, max_length=s.max_length, holdout=s.holdout,
                       seed=s.seed)
        meta = tok.metadata
    finally:
        tok.close()
    report.phase("loading", warnings=data.warnings, n_train=len(data.train),
                 n_heldout=len(data.heldout), train_tokens=data.train_tokens)
    t0 = time.perf_counter()
    import torch  # the heavy imports after the cheap checks: a cancel stops a job at once

    from openwen.tune.evaluate import sample_answers
    from openwen.tune.gguf_lora import Lineage, gguf_tensor_pairs, write_adapter
    from openwen.tune.train import add_lora, load_base, mean_loss, train

    torch.set_num_threads(s.threads or settings.tune_threads or settings.n_threads)
    model = add_lora(load_base(base_path, spec["architecture"]), s)
    report.phase("evaluating base", load_s=time.perf_counter() - t0)
    pad = int(meta.get("tokenizer.ggml.padding_token_id") or meta.get(
        "tokenizer.ggml.eos_token_id") or 0)
    base_loss = mean_loss(model, data.heldout, pad)  # LoRA starts at zero: this is the base
    report.check()
    losses = train(model, data.train, s, on_step=report.step, cancelled=report.cancelled,
                   pad_id=pad)
    report.phase("evaluating derivative")
    tuned_loss = mean_loss(model, data.heldout, pad)
    report.phase("writing adapter")
    arch = spec["architecture"]
    cfg = model.config
    pairs = gguf_tensor_pairs(model.state_dict(), arch, cfg.num_hidden_layers)
    adapter = job.work / "adapter.gguf"
    training = {**s.to_dict(), "steps": len(losses), "examples": len(data.train),
                "final_loss": losses[-1] if losses else None}
    training = {k: v for k, v in training.items() if v is not None}
    lineage = Lineage(name=job.name, base_name=spec["base"],
                      base_organization=_organization(spec.get("base_repo")),
                      base_repo_url=_repo_url(spec.get("base_repo")),
                      dataset_name=spec["dataset"], dataset_sha256=spec["dataset_sha256"],
                      training=training)
    write_adapter(adapter, pairs, arch=arch, alpha=s.alpha, lineage=lineage,
                  n_head=cfg.num_attention_heads,
                  n_head_kv=getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads)
    del model
    report.phase("sampling answers")
    samples = sample_answers(base_path, adapter, data.heldout_chats[:3],
                             n_threads=s.threads or settings.tune_threads or settings.n_threads)
    evaluation = {
        "heldout_examples": len(data.heldout),
        "base_loss": base_loss, "derivative_loss": tuned_loss,
        "base_perplexity": _ppl(base_loss), "derivative_perplexity": _ppl(tuned_loss),
        "samples": samples,
    }
    info = {"name": job.name, "base": spec["base"], "base_path": str(base_path),
            "base_organization": lineage.base_organization, "dataset": spec["dataset"],
            "dataset_sha256": spec["dataset_sha256"], "settings": s.to_dict(),
            "training": training, "eval": evaluation, "created": time.time(),
            "adapter_bytes": adapter.stat().st_size}
    (job.work / "derivative.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    report.check()
    return info


def _ppl(loss: float | None) -> float | None:
    return math.exp(min(loss, 50.0)) if loss is not None else None


def _organization(repo: str | None) -> str | None:
    return repo.split("/", 1)[0] if repo and "/" in repo else None


def _repo_url(repo: str | None) -> str | None:
    return f"https://huggingface.co/{repo}" if repo else None


if __name__ == "__main__":
    main()
