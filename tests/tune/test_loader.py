"""openwen's GGUF-to-transformers loader builds the model llama.cpp serves from the same file:
the next-token logits of PyTorch and of llama.cpp agree (correlation 0.999; llama.cpp multiplies
with quantised activations, so near-ties may swap). With the query/key rows left permuted the
correlation is about 0.6: this test would fail."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from openwen.tune.errors import TuneError
from openwen.tune.gguf_load import load_gguf_model
from openwen.tune.tokens import GGUFTokenizer


def _prompt_ids(path: Path) -> list[int]:
    from openwen.messages import Message

    tok = GGUFTokenizer(path)
    try:
        chat = [Message(role="user", content="What is the capital of France?")]
        return tok(tok.format.render(chat, add_generation_prompt=True).text, True)
    finally:
        tok.close()


def _llama_cpp_logits(path: Path, ids: list[int]) -> np.ndarray:
    from openwen.engines.batch_native import NativeContext, NativeModel

    model = NativeModel(path)
    ctx = NativeContext(model, n_cells=512, n_seq=1, n_batch=512, n_threads=2)
    try:
        ctx.put_run(0, ids, 0, 0)
        ctx.logits[len(ids) - 1] = 1
        assert ctx.decode(len(ids)) == 0
        return np.array(ctx.output_logits(1)[0])
    finally:
        ctx.close()
        model.close()


def test_the_loaded_model_predicts_as_llama_cpp_does(bundled_model: Path) -> None:
    import torch

    ids = _prompt_ids(bundled_model)
    model = load_gguf_model(bundled_model, "llama")
    assert model.config.tie_word_embeddings and model.config.num_hidden_layers == 30
    with torch.no_grad():
        ours = model(torch.tensor([ids])).logits[0, -1].numpy()
    theirs = _llama_cpp_logits(bundled_model, ids)
    assert ours.shape == theirs.shape
    assert np.corrcoef(ours, theirs)[0, 1] > 0.99
    assert set(ours.argsort()[-3:]) == set(theirs.argsort()[-3:])


def test_an_architecture_it_cannot_build_is_named_with_the_ones_it_can(tmp_path: Path) -> None:
    with pytest.raises(TuneError) as err:
        load_gguf_model(tmp_path / "x.gguf", "bert")
    assert "'bert'" in err.value.message and "llama, qwen2, qwen3" in err.value.message
