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


@pytest.mark.parametrize("arch", ["qwen2", "qwen3"])
def test_qwen_files_load_with_every_weight_in_place(arch: str, tmp_path: Path) -> None:
    """A tiny random Qwen model written as GGUF (the gguf package's names and writer) comes
    back with the same weights: biases (qwen2) and the query/key norms (qwen3) included."""
    import gguf
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(arch, vocab_size=64, hidden_size=32, intermediate_size=48,
                                  num_hidden_layers=2, num_attention_heads=4,
                                  num_key_value_heads=2, head_dim=8,
                                  max_position_embeddings=128, tie_word_embeddings=False)
    torch.manual_seed(0)
    original = AutoModelForCausalLM.from_config(config)
    arch_id = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}[arch]
    names = gguf.get_tensor_name_map(arch_id, 2)
    path = tmp_path / f"tiny-{arch}.gguf"
    w = gguf.GGUFWriter(str(path), arch=arch)
    w.add_block_count(2)
    w.add_context_length(128)
    w.add_embedding_length(32)
    w.add_feed_forward_length(48)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_key_length(8)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(10000.0)
    state = original.state_dict()
    for key, value in state.items():
        name = names.get_name(key, try_suffixes=(".weight", ".bias"))
        assert name is not None, key
        w.add_tensor(name, value.numpy())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    loaded = load_gguf_model(path, arch).state_dict()
    assert set(loaded) == set(state)
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key
