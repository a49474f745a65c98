"""openwen's GGUF-to-transformers loader builds the model llama.cpp serves from the same file:
greedy decoding in PyTorch and in llama.cpp picks the same tokens (with the query/key rows
un-permuted; permuted, the model is noise)."""

from __future__ import annotations

from pathlib import Path

import pytest

from openwen.tune.errors import TuneError
from openwen.tune.gguf_load import load_gguf_model
from openwen.tune.tokens import GGUFTokenizer

PROMPT = [{"role": "user", "content": "What is the capital of France?"}]


def _llama_cpp_greedy(path: Path, ids: list[int], n: int) -> list[int]:
    from openwen.engines.batch_native import NativeContext, NativeModel
    from openwen.tune.evaluate import greedy_ids

    model = NativeModel(path)
    ctx = NativeContext(model, n_cells=512, n_seq=1, n_batch=512, n_threads=2)
    try:
        return greedy_ids(model, ctx, ids, n)
    finally:
        ctx.close()
        model.close()


def test_the_loaded_model_decodes_as_llama_cpp_does(bundled_model: Path) -> None:
    import torch

    from openwen.messages import Message

    tok = GGUFTokenizer(bundled_model)
    try:
        text = tok.format.render([Message(**m) for m in PROMPT],  # type: ignore[arg-type]
                                 add_generation_prompt=True).text
        ids = tok(text, True)
    finally:
        tok.close()
    model = load_gguf_model(bundled_model, "llama")
    assert model.config.tie_word_embeddings and model.config.num_hidden_layers == 30
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=6, do_sample=False)
    ours = out[0, len(ids):].tolist()
    assert ours == _llama_cpp_greedy(bundled_model, ids, 6)


def test_an_architecture_it_cannot_build_is_named_with_the_ones_it_can(tmp_path: Path) -> None:
    with pytest.raises(TuneError) as err:
        load_gguf_model(tmp_path / "x.gguf", "bert")
    assert "'bert'" in err.value.message and "llama, qwen2, qwen3" in err.value.message
