"""LoRA training with PyTorch (CPU), transformers and PEFT on a base model loaded from its GGUF.

:mod:`openwen.tune.gguf_load` dequantises the GGUF file into a float32 transformers model (the
weights llama.cpp serves are the same numbers); PEFT adds LoRA matrices to the target
projections; a plain AdamW loop trains them, calling back after every step with progress and
checking for cancellation.
Runs in the runner process only (:mod:`openwen.tune.runner`), never in the server.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from openwen.tune.data import IGNORE, Example
from openwen.tune.errors import TuneError

log = logging.getLogger(__name__)

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass(frozen=True)
class TrainSettings:
    """What a job trains with; every field lands in the derivative's lineage."""

    epochs: int = 3
    rank: int = 8
    alpha: int = 16
    lr: float = 1e-3
    seed: int = 0
    max_length: int = 1024
    batch_size: int = 4
    warmup_steps: int = 2
    weight_decay: float = 0.0
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    holdout: float = 0.1
    threads: int = 0  # 0: torch's default

    def validate(self) -> None:
        checks = [
            (self.epochs >= 1, "epochs must be at least 1"),
            (1 <= self.rank <= 256, "rank must be between 1 and 256"),
            (self.alpha > 0, "alpha must be positive"),
            (0 < self.lr < 1, "lr must be between 0 and 1"),
            (self.max_length >= 16, "max_length must be at least 16"),
            (self.batch_size >= 1, "batch_size must be at least 1"),
            (0 < self.holdout < 1, "holdout must be between 0 and 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise TuneError(message)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["target_modules"] = list(self.target_modules)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainSettings:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "target_modules" in known:
            known["target_modules"] = tuple(known["target_modules"])
        return cls(**known)


@dataclass
class Progress:
    step: int
    total_steps: int
    epoch: int
    loss: float
    tokens_per_s: float
    eta_s: float
    elapsed_s: float
    losses: list[float] = field(default_factory=list)


class Cancelled(Exception):
    """The job was cancelled between two steps."""


def supported_architectures() -> list[str]:
    """GGUF architectures openwen can load into transformers for training."""
    from openwen.tune.gguf_load import supported_architectures as supported

    return supported()


def load_base(path: Path, arch: str) -> Any:
    """The base model as a float32 transformers model, read from its GGUF file."""
    from openwen.tune.gguf_load import load_gguf_model

    return load_gguf_model(path, arch)


def add_lora(model: Any, s: TrainSettings) -> Any:
    from peft import LoraConfig, get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = [t for t in s.target_modules if t in present]
    if not targets:
        raise TuneError(f"none of the target modules {', '.join(s.target_modules)} exist in "
                        "this model")
    config = LoraConfig(r=s.rank, lora_alpha=s.alpha, target_modules=targets, lora_dropout=0.0,
                        bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def batches(examples: Sequence[Example], size: int, rng: random.Random) -> list[list[Example]]:
    order = list(examples)
    rng.shuffle(order)
    return [order[i:i + size] for i in range(0, len(order), size)]


def collate(batch: Sequence[Example], pad_id: int) -> dict[str, Any]:
    import torch

    n = max(len(e.ids) for e in batch)
    ids = [e.ids + [pad_id] * (n - len(e.ids)) for e in batch]
    labels = [e.labels + [IGNORE] * (n - len(e.labels)) for e in batch]
    mask = [[1] * len(e.ids) + [0] * (n - len(e.ids)) for e in batch]
    return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels),
            "attention_mask": torch.tensor(mask)}


def train(model: Any, examples: Sequence[Example], s: TrainSettings, *,
          on_step: Callable[[Progress], None], cancelled: Callable[[], bool],
          pad_id: int = 0) -> list[float]:
    """Train the LoRA parameters of ``model``; returns the loss of every step."""
    import torch

    torch.manual_seed(s.seed)
    rng = random.Random(s.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
    steps_per_epoch = math.ceil(len(examples) / s.batch_size)
    total = steps_per_epoch * s.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(s.warmup_steps, total))
    model.train()
    losses: list[float] = []
    start = time.perf_counter()
    tokens = 0
    step = 0
    for epoch in range(1, s.epochs + 1):
        for batch in batches(examples, s.batch_size, rng):
            if cancelled():
                raise Cancelled()
            out = model(**collate(batch, pad_id))
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            tokens += sum(len(e.ids) for e in batch)
            losses.append(float(out.loss.detach()))
            elapsed = time.perf_counter() - start
            on_step(Progress(step=step, total_steps=total, epoch=epoch, loss=losses[-1],
                             tokens_per_s=tokens / elapsed, eta_s=elapsed / step * (total - step),
                             elapsed_s=elapsed, losses=losses))
    model.eval()
    return losses


def _schedule(warmup: int, total: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.05, 1.0 - (step - warmup) / max(1, total - warmup))

    return factor


def mean_loss(model: Any, examples: Sequence[Example], pad_id: int = 0) -> float | None:
    """Token-weighted mean loss over ``examples`` (no gradient), ``None`` when there are none."""
    import torch

    total, count = 0.0, 0
    with torch.no_grad():
        for ex in examples:
            batch = collate([ex], pad_id)
            out = model(**batch)
            n = ex.n_target - (1 if ex.labels[0] != IGNORE else 0)
            total += float(out.loss) * max(n, 1)
            count += max(n, 1)
    return total / count if count else None
