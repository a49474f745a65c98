"""openwen's GGUF LoRA writer: PEFT LoRA matrices to a llama.cpp adapter file, with lineage.

The file is what llama.cpp's ``llama_adapter_lora_init`` reads: ``general.type = adapter``,
``adapter.type = lora``, ``adapter.lora.alpha`` (llama.cpp scales by alpha / rank, as PEFT does),
and for every adapted weight ``<gguf name>.weight.lora_a`` (rank x n_in) and ``.lora_b``
(n_out x rank). Tensor names come from the ``gguf`` package's own HF-to-GGUF name map.

Llama-family GGUF files store the query and key projections with their rows permuted for
llama.cpp's RoPE layout; transformers undoes that when it loads the GGUF, so ``lora_b`` of those
projections is permuted back the same way here.

Lineage follows the hub's keys: ``general.base_model.count`` / ``general.base_model.0.*``,
``general.dataset.count`` / ``general.dataset.0.*``, plus ``openwen.dataset.sha256`` and the
training settings under ``openwen.training.*``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PERMUTED_ARCHS = ("llama",)  # q/k rows permuted by llama.cpp's converter, undone by transformers
_LORA_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.default)?"
                       r"\.weight$")


@dataclass(frozen=True)
class Lineage:
    """Where a derivative comes from (written into the adapter file)."""

    name: str
    base_name: str
    base_organization: str | None
    base_repo_url: str | None
    dataset_name: str
    dataset_sha256: str
    training: Mapping[str, Any]


def permute_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's converter's q/k permutation, applied to the rows of ``w``."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def gguf_tensor_pairs(state: Mapping[str, Any], arch: str, n_layers: int
                      ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """PEFT's ``lora_A``/``lora_B`` weights keyed by the GGUF name of the adapted tensor."""
    import gguf

    arch_ids = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}
    if arch not in arch_ids:
        raise ValueError(f"the gguf package does not know the architecture '{arch}'")
    names = gguf.get_tensor_name_map(arch_ids[arch], n_layers)
    parts: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state.items():
        m = _LORA_KEY.match(key)
        if m is None:
            continue
        module = m["module"]
        gguf_name = names.get_name(module)
        if gguf_name is None:
            raise ValueError(f"no GGUF tensor name for the adapted module '{module}'")
        arr = value.detach().to("cpu").float().numpy() if hasattr(value, "detach") else value
        parts.setdefault(gguf_name, {})[m["ab"]] = np.ascontiguousarray(arr, dtype=np.float32)
    pairs = {}
    for name, ab in sorted(parts.items()):
        if set(ab) != {"A", "B"}:
            raise ValueError(f"LoRA weights of {name} are incomplete")
        pairs[name] = (ab["A"], ab["B"])
    return pairs


def write_adapter(path: Path, pairs: Mapping[str, tuple[np.ndarray, np.ndarray]], *, arch: str,
                  alpha: float, lineage: Lineage, n_head: int, n_head_kv: int) -> None:
    """Write the adapter to ``path`` atomically (a temporary file renamed into place)."""
    import gguf

    tmp = path.with_name(path.name + ".tmp")
    writer = gguf.GGUFWriter(str(tmp), arch=arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    _add_lineage(writer, lineage)
    for name, (a, b) in pairs.items():
        if arch in PERMUTED_ARCHS and name.endswith(".attn_q"):
            b = permute_rows(b, n_head)
        elif arch in PERMUTED_ARCHS and name.endswith(".attn_k"):
            b = permute_rows(b, n_head_kv)
        writer.add_tensor(f"{name}.weight.lora_a", np.ascontiguousarray(a))
        writer.add_tensor(f"{name}.weight.lora_b", np.ascontiguousarray(b))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, path)


def _add_lineage(writer: Any, lin: Lineage) -> None:
    writer.add_name(lin.name)
    writer.add_uint32("general.base_model.count", 1)
    writer.add_string("general.base_model.0.name", lin.base_name)
    if lin.base_organization:
        writer.add_string("general.base_model.0.organization", lin.base_organization)
    if lin.base_repo_url:
        writer.add_string("general.base_model.0.repo_url", lin.base_repo_url)
    writer.add_uint32("general.dataset.count", 1)
    writer.add_string("general.dataset.0.name", lin.dataset_name)
    writer.add_string("openwen.dataset.sha256", lin.dataset_sha256)
    for key, value in sorted(lin.training.items()):
        full = f"openwen.training.{key}"
        if isinstance(value, bool):
            writer.add_bool(full, value)
        elif isinstance(value, int):
            writer.add_uint64(full, value) if value >= 0 else writer.add_int64(full, value)
        elif isinstance(value, float):
            writer.add_float64(full, value)
        elif isinstance(value, list | tuple):
            writer.add_string(full, ",".join(str(v) for v in value))
        else:
            writer.add_string(full, str(value))


def read_lineage(path: Path) -> dict[str, Any]:
    """The adapter file's metadata as a plain dict (general.*, adapter.*, openwen.*)."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    out: dict[str, Any] = {}
    for field in reader.fields.values():
        if field.name.startswith(("general.", "adapter.", "openwen.")):
            out[field.name] = field.contents()
    return out
