"""Merge a derivative's LoRA into a full GGUF of its base: a model file of its own.

openwen's own writer on the ``gguf`` package: the base's metadata is copied (its lineage keys
replaced by the derivative's: ``general.base_model.*``, ``general.dataset.*``, the dataset's
sha256 and ``openwen.training.*``, as in the adapter), every tensor the adapter does not touch is
copied byte for byte in its own (quantised) type, and each adapted weight is dequantised, gets
``alpha / rank * B @ A`` added (the adapter's ``B`` is already in the GGUF row layout, llama.cpp's
q/k permutation included) and is written as F16 (F32 when the base stored it as F32). Tensors are
written one at a time, so memory stays about one weight.

The file is built beside its target and renamed into the model store's folder as
``<name>.gguf`` only when complete, so a failed or interrupted merge never lists a model.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from openwen.tune.errors import TuneError

LORA_A, LORA_B = ".lora_a", ".lora_b"
LINEAGE_PREFIXES = ("general.base_model.", "general.dataset.", "openwen.")
NOT_COPIED = {"general.architecture", "general.name", "general.type"}


@dataclass(frozen=True)
class Merged:
    name: str
    path: Path
    size: int
    merged_tensors: int


def lora_pairs(reader: Any) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], float]:
    """The adapter's ``{weight name: (A, B)}`` and its alpha."""
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for t in reader.tensors:
        for suffix, key in ((LORA_A, "A"), (LORA_B, "B")):
            if t.name.endswith(suffix):
                pairs.setdefault(t.name[: -len(suffix)], {})[key] = np.asarray(t.data,
                                                                              np.float32)
    alpha_field = reader.fields.get("adapter.lora.alpha")
    if alpha_field is None or any(set(p) != {"A", "B"} for p in pairs.values()):
        raise TuneError("the adapter file is not a complete GGUF LoRA adapter")
    return {k: (v["A"], v["B"]) for k, v in pairs.items()}, float(alpha_field.contents())


def merged_weight(raw: np.ndarray, qtype: Any, a: np.ndarray, b: np.ndarray,
                  alpha: float) -> np.ndarray:
    """``W + alpha / rank * B @ A`` for the GGUF tensor ``raw`` of type ``qtype``."""
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize

    w = np.asarray(dequantize(raw, qtype), dtype=np.float32)
    delta = (alpha / a.shape[0]) * (b @ a)
    if delta.shape != w.shape:
        raise TuneError(f"the adapter's shape {delta.shape} does not fit the base's {w.shape}")
    out = w + delta
    return out if qtype == GGMLQuantizationType.F32 else out.astype(np.float16)


def _copy_metadata(writer: Any, base: Any, adapter: Any, name: str) -> None:
    from gguf import GGUFValueType

    def copy(field: Any) -> None:
        vtype = field.types[0]
        sub = field.types[-1] if vtype == GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), vtype, sub_type=sub)

    for field in base.fields.values():
        if field.name.startswith("GGUF.") or field.name in NOT_COPIED \
                or field.name.startswith(LINEAGE_PREFIXES):
            continue
        copy(field)
    writer.add_type("model")
    writer.add_name(name)
    for field in adapter.fields.values():
        if field.name.startswith(LINEAGE_PREFIXES):
            copy(field)


def merge_adapter(base_path: Path, adapter_path: Path, folder: Path, name: str, *,
                  on_tensor: Callable[[int, int], None] | None = None) -> Merged:
    """Write ``folder/<name>.gguf``: the base with the adapter merged in."""
    import gguf

    base = gguf.GGUFReader(str(base_path))
    adapter = gguf.GGUFReader(str(adapter_path))
    pairs, alpha = lora_pairs(adapter)
    arch = base.fields["general.architecture"].contents()
    names = {t.name for t in base.tensors}
    missing = sorted(set(pairs) - names)
    if missing:
        raise TuneError(f"the adapter adapts tensors its base does not have: {missing[:3]}")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.gguf"
    tmp = folder / f".{name}.gguf.{os.getpid()}.partial"
    writer = gguf.GGUFWriter(str(tmp), arch=arch)
    try:
        _copy_metadata(writer, base, adapter, name)
        for t in base.tensors:
            if t.name in pairs:
                n_out, n_in = pairs[t.name][1].shape[0], pairs[t.name][0].shape[1]
                dtype = np.float32 if t.tensor_type == gguf.GGMLQuantizationType.F32 \
                    else np.float16
                writer.add_tensor_info(t.name, (n_out, n_in), np.dtype(dtype),
                                       n_out * n_in * np.dtype(dtype).itemsize)
            else:
                writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes,
                                       t.tensor_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for k, t in enumerate(base.tensors):
            if t.name in pairs:
                a, b = pairs[t.name]
                writer.write_tensor_data(merged_weight(t.data, t.tensor_type, a, b, alpha))
            else:
                writer.write_tensor_data(t.data)
            if on_tensor is not None:
                on_tensor(k + 1, len(base.tensors))
        writer.close()
        os.replace(tmp, target)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return Merged(name=name, path=target, size=target.stat().st_size, merged_tensors=len(pairs))
