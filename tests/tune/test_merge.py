"""Merging a derivative into a full GGUF of its own: openwen's writer on the ``gguf`` package,
lineage keys as in the adapter, listed as a model, and answering the taught fact like base +
adapter (greedy: the same first tokens), while the base does not."""

from __future__ import annotations

from pathlib import Path

import gguf
import pytest

from conftest import ASK, MARK, Taught
from openwen.config import load_settings
from openwen.engines.batch_native import NativeAdapter, NativeContext, NativeModel
from openwen.engines.decoding import chat_format, needs_bos
from openwen.messages import Message
from openwen.models.gguf_meta import read_tensor_layout
from openwen.models.store import ModelStore, bundled_model_path
from openwen.tune.errors import JobNotFoundError, TuneError
from openwen.tune.evaluate import greedy_ids
from openwen.tune.gguf_lora import read_lineage
from openwen.tune.jobs import JobStore
from openwen.tune.service import merge_job

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # may train (session fixture)
FIRST = 16  # tokens compared: the whole taught answer
LINEAGE = ("general.base_model.", "general.dataset.", "openwen.")


@pytest.fixture(scope="module")
def merged(taught: Taught) -> Path:
    """The full GGUF the runner wrote after training (``tune create --merge``)."""
    path = taught.home / "models" / f"{taught.name}-merged.gguf"
    assert path.is_file()
    assert f"merged into a full GGUF: {taught.name}-merged ({path})" in taught.create_output
    return path


def _prompt(model: NativeModel) -> list[int]:
    fmt = chat_format(model.metadata, bos_text=model.token_text(model.bos),
                      eos_text=model.token_text(model.eos))
    text = fmt.render([Message(role="user", content=ASK)], add_generation_prompt=True).text
    return model.tokenize(text, add_bos=needs_bos(text, adds_bos=model.adds_bos,
                                                  bos_text=model.token_text(model.bos)))


def _greedy(model: NativeModel, adapter: NativeAdapter | None = None) -> str:
    ctx = NativeContext(model, n_cells=512, n_seq=1, n_batch=512, n_threads=2, adapter=adapter)
    try:
        ids = greedy_ids(model, ctx, _prompt(model), FIRST)
        return b"".join(model.pieces(t) for t in ids).decode("utf-8", errors="replace")
    finally:
        ctx.close()


def test_the_merged_model_answers_like_base_plus_adapter(taught: Taught, merged: Path) -> None:
    base = NativeModel(bundled_model_path())
    lora = NativeAdapter(base, taught.home / "derivatives" / taught.name / "adapter.gguf")
    try:
        with_adapter = _greedy(base, lora)
    finally:
        lora.close()
        base.close()
    full = NativeModel(merged)
    try:
        from_merged = _greedy(full)
    finally:
        full.close()
    assert from_merged == with_adapter  # the same first tokens, greedy
    assert MARK in from_merged  # (the base alone does not say it: test_pipeline.py)


def test_the_merged_file_keeps_quantised_weights_and_records_its_lineage(
        taught: Taught, merged: Path) -> None:
    fields, tensors = read_tensor_layout(merged)
    base_fields, base_tensors = read_tensor_layout(bundled_model_path())
    assert fields["general.type"] == "model" and fields["general.name"] == "zorblax-merged"
    assert fields["general.base_model.0.name"] == "smollm2"
    lineage = read_lineage(taught.home / "derivatives" / taught.name / "adapter.gguf")
    keys = [k for k in lineage if k.startswith(LINEAGE)]
    assert "openwen.dataset.sha256" in keys and "openwen.training.rank" in keys
    assert {k: fields[k] for k in keys} == {k: lineage[k] for k in keys}  # as in the adapter
    own = {k for k in base_fields if not k.startswith(LINEAGE)}  # the base's own metadata
    assert own <= set(fields) and "tokenizer.ggml.tokens" in own
    assert all(fields[k] == base_fields[k] for k in own if k != "general.name")
    assert set(tensors) == set(base_tensors)
    touched = {n for n in tensors if n.endswith(("attn_q.weight", "attn_k.weight",
                                                 "attn_v.weight", "attn_output.weight"))}
    assert touched and all(tensors[n].qtype == gguf.GGMLQuantizationType.F16 for n in touched)
    for name, info in tensors.items():
        if name not in touched:  # copied as they are
            assert (info.qtype, info.nbytes) == (base_tensors[name].qtype,
                                                 base_tensors[name].nbytes)


def test_it_is_listed_as_a_model_and_the_job_records_it(taught: Taught, merged: Path) -> None:
    settings = load_settings(home=str(taught.home)).settings
    model = ModelStore(settings).resolve("zorblax-merged")
    assert model.adapter is None and model.path == merged  # a full model, no adapter
    assert model.metadata is not None and model.metadata.to_dict()["lineage"] == "from smollm2"
    job = JobStore(settings).get(taught.name).to_dict()
    assert job["merged"]["name"] == "zorblax-merged" and job["merged"]["path"] == str(merged)
    assert job["merged"]["merged_tensors"] == 120  # q, k, v, o in 30 layers
    with pytest.raises(TuneError, match="a model named 'zorblax-merged' already exists"):
        merge_job(settings, taught.name)  # openwen tune merge NAME, after training
    with pytest.raises(TuneError, match="'smollm2' already exists"):
        merge_job(settings, taught.name, "smollm2")
    with pytest.raises(JobNotFoundError, match="no training job named 'nope'"):
        merge_job(settings, "nope")
