"""A GGUF base model as a float32 transformers model, read by openwen (fast, one pass).

transformers can load a GGUF file itself (``from_pretrained(gguf_file=...)``), but it walks the
file twice with ``gguf.GGUFReader`` (a numpy view per vocabulary string: tens of seconds for a
49k-token vocabulary on a busy machine) and builds the gguf name map once per tensor. This
reader takes the tensor layout from :func:`openwen.models.gguf_meta.read_tensor_layout`, builds
the transformers config from the GGUF keys with transformers' own key mapping, dequantises each
tensor with the ``gguf`` package, and maps names with one ``gguf`` name map. Llama-family files
store the query and key rows permuted for llama.cpp's RoPE; they are permuted back here, as
transformers does.
"""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import Any

import numpy as np

from openwen.tune.errors import TuneError

# GGUF architectures this loader builds (transformers model types of the same name).
SUPPORTED = ("llama", "qwen2", "qwen3")
PERMUTED = ("llama",)


def supported_architectures() -> list[str]:
    return list(SUPPORTED)


def load_gguf_model(path: Path, arch: str) -> Any:
    """The model in ``path`` (architecture ``arch``) as a float32 ``*ForCausalLM``."""
    if arch not in SUPPORTED:
        raise TuneError(f"cannot train on a '{arch}' model: openwen's GGUF-to-transformers "
                        f"loader supports {', '.join(SUPPORTED)}")
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from openwen.models.gguf_meta import read_tensor_layout

    hf_logging.set_verbosity_error()
    fields, tensors = read_tensor_layout(path)
    config = AutoConfig.for_model(arch, **config_kwargs(arch, fields, tensors))
    with init_empty_weights():  # parameters on the meta device: no random init to overwrite
        model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32)
    state = model.state_dict()
    loaded = _weights(path, arch, tensors, state.keys(), config)
    missing = [k for k in state if k not in loaded and not _tied(k, config)]
    if missing:
        raise TuneError(f"{path.name} lacks weights transformers needs: {', '.join(missing[:5])}")
    model.load_state_dict(loaded, strict=False, assign=True)
    if config.tie_word_embeddings:
        model.tie_weights()
    model.config.use_cache = False
    return model


def config_kwargs(arch: str, fields: dict[str, Any], tensors: dict[str, Any]) -> dict[str, Any]:
    """transformers config values from the GGUF keys (transformers' own key mapping)."""
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

    out: dict[str, Any] = {}
    mapping: dict[str, str | None] = GGUF_CONFIG_MAPPING[arch]  # type: ignore[assignment]
    for key, attr in mapping.items():
        value = fields.get(f"{arch}.{key}")
        if attr is not None and value is not None:
            out[attr] = value
    if (key_length := fields.get(f"{arch}.attention.key_length")) is not None:
        out["head_dim"] = key_length
    out["vocab_size"] = tensors["token_embd.weight"].shape[0]
    out["tie_word_embeddings"] = "output.weight" not in tensors
    for name in ("bos", "eos", "padding"):
        token = fields.get(f"tokenizer.ggml.{name}_token_id")
        if token is not None:
            out["pad_token_id" if name == "padding" else f"{name}_token_id"] = token
    return out


def _tied(key: str, config: Any) -> bool:
    return bool(config.tie_word_embeddings) and key == "lm_head.weight"


def _weights(path: Path, arch: str, tensors: dict[str, Any], keys: Any, config: Any
             ) -> dict[str, Any]:
    import gguf
    import torch
    from gguf.quants import dequantize

    arch_id = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}[arch]
    names = gguf.get_tensor_name_map(arch_id, config.num_hidden_layers)
    n_head, n_kv = config.num_attention_heads, config.num_key_value_heads
    out: dict[str, Any] = {}
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        for key in keys:
            gguf_name = names.get_name(key, try_suffixes=(".weight", ".bias"))
            info = tensors.get(gguf_name) if gguf_name else None
            if gguf_name is None or info is None:
                continue
            raw = np.frombuffer(buf, dtype=np.uint8, count=info.nbytes, offset=info.offset)
            w = np.array(dequantize(raw, info.qtype), dtype=np.float32)  # a copy: no mmap views
            w = w.reshape(info.shape)
            if arch in PERMUTED and gguf_name.endswith(("attn_q.weight", "attn_k.weight")):
                w = np.ascontiguousarray(_unpermute(w, n_head if "attn_q" in gguf_name else n_kv))
            out[key] = torch.from_numpy(w)
            del raw
    return out


def _unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's converter's q/k row permutation (transformers does the same)."""
    dim = w.shape[0] // n_head // 2
    return w.reshape(n_head, dim, 2, *w.shape[1:]).swapaxes(2, 1).reshape(w.shape)
