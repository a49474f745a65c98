"""The whole path, for real: JSONL -> training process -> GGUF adapter -> evaluation -> served.

The derivative learns a fact the bundled SmolLM2 cannot know ("the Zorblax festival is held in
Quillmere") and states it, through llama.cpp with the adapter, while the base does not.
"""

from __future__ import annotations

import json

import pytest

from conftest import MARK, STEPS, Taught, openwen
from openwen.tune.gguf_lora import read_lineage

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # a busy machine trains slowly


def test_cli_trains_and_prints_the_evaluation(taught: Taught) -> None:
    out = taught.create_output
    assert "queued 'zorblax': 7 training and 1 held-out examples on smollm2" in out
    assert "done" in out and "perplexity" in out and "derivative:" in out
    shown = openwen(taught.home, "tune", "show", "zorblax", "--json")
    job = json.loads(shown.stdout)
    assert job["state"] == "done"
    ev = job["eval"]
    assert ev["derivative_loss"] < ev["base_loss"] / 2  # the held-out paraphrase is learnt
    assert job["step"] == job["total_steps"] == STEPS  # 7 examples, one a step, 2 epochs
    assert len(job["losses"]) == STEPS and job["losses"][-1] < job["losses"][0] / 4
    assert job["tokens_per_s"] > 0 and job["eta_s"] == 0 and job["elapsed_s"] > 0
    sample = ev["samples"][0]
    assert MARK in sample["derivative"] and MARK not in sample["base"]
    listed = openwen(taught.home, "tune", "list")
    assert "zorblax" in listed.stdout and "done" in listed.stdout


def test_the_adapter_is_a_small_gguf_lora_with_lineage(taught: Taught) -> None:
    adapter = taught.home / "derivatives" / "zorblax" / "adapter.gguf"
    assert adapter.stat().st_size < 8 * 2**20
    meta = read_lineage(adapter)
    assert meta["general.type"] == "adapter"
    assert meta["adapter.type"] == "lora"
    assert meta["adapter.lora.alpha"] == pytest.approx(16.0)
    assert meta["general.architecture"] == "llama"
    assert meta["general.base_model.count"] == 1
    assert meta["general.base_model.0.name"] == "smollm2"
    assert meta["general.dataset.0.name"] == "zorblax.jsonl"
    import hashlib

    assert meta["openwen.dataset.sha256"] == hashlib.sha256(taught.data.read_bytes()).hexdigest()
    assert meta["openwen.training.rank"] == 8
    assert meta["openwen.training.epochs"] == 2
    assert meta["openwen.training.batch_size"] == 1
    assert meta["openwen.training.lr"] == pytest.approx(0.003)
    assert meta["openwen.training.seed"] == 0


def test_models_lists_the_derivative_with_its_base(taught: Taught) -> None:
    out = openwen(taught.home, "models", "--json")
    models = {m["name"]: m for m in json.loads(out.stdout)}
    d = models["zorblax"]
    assert d["base"] == "smollm2" and d["adapter"].endswith("adapter.gguf")
    assert d["metadata"]["lineage"] == "from smollm2"
    table = openwen(taught.home, "models", COLUMNS="200")  # rich wraps narrow columns
    assert "zorblax" in table.stdout and "made from smollm2 (openwen tune)" in table.stdout
