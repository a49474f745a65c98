"""Read a GGUF file's metadata (header, key/values, tensor infos) without touching tensor data.

The value types, file types and quantisation block sizes come from the ``gguf`` package. The walk
itself is a small reader over ``mmap``: ``gguf.GGUFReader`` builds a numpy view for every element
of every array (150,000+ vocabulary strings for Qwen), which takes seconds per file, while listing
a model store should take milliseconds. Only the pages holding the header are read from disk.

A missing file, a non-GGUF file, or a truncated or corrupt header raises
:class:`~openwen.errors.ModelFileError` with a message that says which.
"""

from __future__ import annotations

import mmap
import re
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gguf.constants import (
    GGML_QUANT_SIZES,
    GGUF_DEFAULT_ALIGNMENT,
    GGMLQuantizationType,
    GGUFValueType,
    LlamaFileType,
)

from openwen.errors import ModelFileError

GGUF_MAGIC_BYTES = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
_GUESSED_FLAG = int(LlamaFileType.GUESSED)
# Corrupt counts would otherwise send the walk into a near-endless loop.
_MAX_KV = 1_000_000
_MAX_TENSORS = 10_000_000
_MAX_DIMS = 8

_SCALARS: dict[GGUFValueType, str] = {
    GGUFValueType.UINT8: "B",
    GGUFValueType.INT8: "b",
    GGUFValueType.UINT16: "H",
    GGUFValueType.INT16: "h",
    GGUFValueType.UINT32: "I",
    GGUFValueType.INT32: "i",
    GGUFValueType.FLOAT32: "f",
    GGUFValueType.BOOL: "?",
    GGUFValueType.UINT64: "Q",
    GGUFValueType.INT64: "q",
    GGUFValueType.FLOAT64: "d",
}
_TOKENS_KEY = "tokenizer.ggml.tokens"
_SPLIT_RE = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)


@dataclass(frozen=True)
class BaseModel:
    """One entry of ``general.base_model.{i}.*``: what this model was fine-tuned or merged from."""

    name: str | None = None
    organization: str | None = None
    repo_url: str | None = None

    @property
    def label(self) -> str:
        """``Organization/Name`` when both are known, else whatever is."""
        if self.organization and self.name:
            return f"{self.organization}/{self.name}"
        if self.name:
            return self.name
        if self.repo_url:
            return self.repo_url.rstrip("/").split("huggingface.co/")[-1]
        return "?"


@dataclass(frozen=True)
class GGUFMetadata:
    """What openwen needs to know about a GGUF model before loading it."""

    path: Path
    version: int
    architecture: str | None
    name: str | None
    context_length: int | None
    file_type: int | None
    quantization: str | None
    parameter_count: int | None
    size_label: str | None
    chat_template: str | None
    bos_token: str | None
    eos_token: str | None
    bos_token_id: int | None
    eos_token_id: int | None
    basename: str | None = None
    finetune: str | None = None
    organization: str | None = None
    base_models: tuple[BaseModel, ...] = ()
    tensor_count: int = 0
    split_count: int = 1
    fields: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def lineage(self) -> str:
        """A short human description of where the model comes from ('' if nothing is known)."""
        if self.base_models:
            return "from " + ", ".join(b.label for b in self.base_models)
        parts = [p for p in (self.basename, self.finetune) if p]
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (no chat template body, no raw fields)."""
        return {
            "architecture": self.architecture,
            "name": self.name,
            "context_length": self.context_length,
            "quantization": self.quantization,
            "file_type": self.file_type,
            "parameter_count": self.parameter_count,
            "size_label": self.size_label,
            "has_chat_template": self.chat_template is not None,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            "basename": self.basename,
            "finetune": self.finetune,
            "base_models": [
                {"name": b.name, "organization": b.organization, "repo_url": b.repo_url}
                for b in self.base_models
            ],
            "lineage": self.lineage,
            "gguf_version": self.version,
            "tensor_count": self.tensor_count,
            "split_count": self.split_count,
        }


class _Truncated(Exception):
    pass


class _Corrupt(Exception):
    pass


class _Cursor:
    """Sequential reads over a byte buffer with bounds checks."""

    def __init__(self, buf: mmap.mmap | bytes, order: str = "<"):
        self.buf = buf
        self.size = len(buf)
        self.pos = 0
        self.order = order
        self._u64 = struct.Struct(order + "Q")

    def skip(self, n: int) -> None:
        if n < 0 or self.pos + n > self.size:
            raise _Truncated
        self.pos += n

    def unpack(self, fmt: str) -> Any:
        st = struct.Struct(self.order + fmt)
        if self.pos + st.size > self.size:
            raise _Truncated
        (value,) = st.unpack_from(self.buf, self.pos)
        self.pos += st.size
        return value

    def u32(self) -> int:
        return int(self.unpack("I"))

    def u64(self) -> int:
        return int(self.unpack("Q"))

    def raw_string(self) -> bytes:
        n = self.u64()
        if n > self.size - self.pos:
            raise _Truncated
        data = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return data

    def string(self) -> str:
        return self.raw_string().decode("utf-8", errors="replace")

    def skip_strings(self, count: int) -> None:
        """Skip ``count`` length-prefixed strings (the hot loop for vocabularies)."""
        unpack, buf, size, pos = self._u64.unpack_from, self.buf, self.size, self.pos
        for _ in range(count):
            if pos + 8 > size:
                raise _Truncated
            pos += 8 + unpack(buf, pos)[0]
        if pos > size:
            raise _Truncated
        self.pos = pos


def _value_type(raw: int) -> GGUFValueType:
    try:
        return GGUFValueType(raw)
    except ValueError:
        raise _Corrupt(f"unknown value type {raw}") from None


def _read_value(cur: _Cursor, vtype: GGUFValueType, key: str, arrays: dict[str, Any]) -> Any:
    """Read a scalar or string; skip arrays, remembering where the vocabulary is."""
    if vtype == GGUFValueType.STRING:
        return cur.string()
    if vtype in _SCALARS:
        return cur.unpack(_SCALARS[vtype])
    if vtype != GGUFValueType.ARRAY:
        raise _Corrupt(f"unknown value type {vtype}")
    item_type = _value_type(cur.u32())
    count = cur.u64()
    if count > cur.size:
        raise _Corrupt(f"array '{key}' claims {count} items")
    arrays[key] = (item_type, count, cur.pos)
    _skip_items(cur, item_type, count, key)
    return None


def _skip_items(cur: _Cursor, item_type: GGUFValueType, count: int, key: str) -> None:
    if item_type == GGUFValueType.STRING:
        cur.skip_strings(count)
    elif item_type in _SCALARS:
        cur.skip(struct.calcsize("<" + _SCALARS[item_type]) * count)
    else:  # arrays of arrays: rare, walk them
        for _ in range(count):
            _read_value(cur, item_type, key, {})


def _tokens_at(cur: _Cursor, start: int, count: int, wanted: set[int]) -> dict[int, str]:
    """Strings at the given indexes of the vocabulary array that starts at ``start``."""
    found: dict[int, str] = {}
    wanted = {i for i in wanted if 0 <= i < count}
    if not wanted:
        return found
    cur.pos = start
    for index in range(max(wanted) + 1):
        if index in wanted:
            found[index] = cur.string()
        else:
            cur.skip_strings(1)
    return found


def _file_type_name(file_type: int) -> str:
    base = file_type & ~_GUESSED_FLAG
    try:
        name = LlamaFileType(base).name
    except ValueError:
        return f"type-{base}"
    return "F32" if name == "ALL_F32" else name.removeprefix("MOSTLY_")


@dataclass
class _TensorSummary:
    count: int = 0
    params: int = 0
    data_end: int = 0
    sizes_known: bool = True
    weight_types: Counter[str] = field(default_factory=Counter)


def _read_tensor_infos(cur: _Cursor, count: int) -> _TensorSummary:
    summary = _TensorSummary(count=count)
    for _ in range(count):
        name = cur.raw_string()
        n_dims = cur.u32()
        if n_dims > _MAX_DIMS:
            raise _Corrupt(f"tensor with {n_dims} dimensions")
        elements = 1
        for _ in range(n_dims):
            elements *= cur.u64()
        raw_type = cur.u32()
        offset = cur.u64()
        summary.params += elements
        try:
            qtype = GGMLQuantizationType(raw_type)
        except ValueError:
            summary.sizes_known = False
            continue
        block, type_size = GGML_QUANT_SIZES[qtype]
        summary.data_end = max(summary.data_end, offset + elements * type_size // block)
        if n_dims >= 2 and not name.startswith((b"token_embd", b"output.")):
            summary.weight_types[qtype.name] += elements
    return summary


def _open_buffer(path: Path) -> tuple[mmap.mmap | bytes, int]:
    try:
        with path.open("rb") as fh:
            size = path.stat().st_size
            if size == 0:
                return b"", 0
            return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ), size
    except FileNotFoundError:
        raise ModelFileError(f"model file not found: {path}") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path} is a directory, not a GGUF model file") from None
    except OSError as exc:
        raise ModelFileError(f"cannot read model file {path}: {exc.strerror or exc}") from None


def read_metadata(path: str | Path) -> GGUFMetadata:
    """Parse the GGUF header of ``path``. Raises :class:`ModelFileError` on any problem."""
    path = Path(path)
    buf, size = _open_buffer(path)
    try:
        return _parse(path, buf, size)
    except _Truncated:
        raise ModelFileError(
            f"{path.name} is truncated or corrupt: the GGUF header ends early "
            f"(file is {size} bytes); re-download it"
        ) from None
    except _Corrupt as exc:
        raise ModelFileError(f"{path.name} has a corrupt GGUF header: {exc}") from None
    finally:
        if isinstance(buf, mmap.mmap):
            buf.close()


def _header(path: Path, buf: mmap.mmap | bytes) -> tuple[_Cursor, int]:
    if bytes(buf[:4]) != GGUF_MAGIC_BYTES:
        raise ModelFileError(
            f"{path.name} is not a GGUF model file (it does not start with 'GGUF'); "
            "openwen runs GGUF models only"
        )
    cur = _Cursor(buf, "<")
    cur.skip(4)
    version = cur.u32()
    if version & 0xFFFF == 0 and version != 0:  # written on a big-endian machine
        cur = _Cursor(buf, ">")
        cur.skip(4)
        version = cur.u32()
    if version not in SUPPORTED_VERSIONS:
        raise ModelFileError(
            f"{path.name} uses GGUF version {version}; supported versions: "
            + ", ".join(str(v) for v in SUPPORTED_VERSIONS)
        )
    return cur, version


def _parse(path: Path, buf: mmap.mmap | bytes, size: int) -> GGUFMetadata:
    cur, version = _header(path, buf)
    tensor_count, kv_count = cur.u64(), cur.u64()
    if kv_count > _MAX_KV or tensor_count > _MAX_TENSORS:
        raise _Corrupt(f"implausible counts ({kv_count} keys, {tensor_count} tensors)")
    fields: dict[str, Any] = {}
    arrays: dict[str, Any] = {}
    for _ in range(kv_count):
        key = cur.string()
        fields[key] = _read_value(cur, _value_type(cur.u32()), key, arrays)
    tensors = _read_tensor_infos(cur, tensor_count)
    alignment = fields.get("general.alignment") or GGUF_DEFAULT_ALIGNMENT
    data_start = -(-cur.pos // alignment) * alignment
    if tensors.sizes_known and tensor_count and data_start + tensors.data_end > size:
        raise ModelFileError(
            f"{path.name} is truncated: its tensors need {data_start + tensors.data_end} bytes "
            f"but the file has {size}; re-download it"
        )
    tokens = _vocab_tokens(cur, fields, arrays)
    return _build(path, version, fields, tensors, tokens)


def _vocab_tokens(cur: _Cursor, fields: dict[str, Any], arrays: dict[str, Any]) -> dict[int, str]:
    keys = ("tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id")
    ids = {i for i in (fields.get(k) for k in keys) if isinstance(i, int)}
    entry = arrays.get(_TOKENS_KEY)
    if not ids or entry is None or entry[0] != GGUFValueType.STRING:
        return {}
    _, count, start = entry
    return _tokens_at(cur, start, count, ids)


def _base_models(fields: dict[str, Any]) -> tuple[BaseModel, ...]:
    count = fields.get("general.base_model.count")
    if not isinstance(count, int) or count <= 0:
        return ()
    found = []
    for i in range(min(count, 64)):
        prefix = f"general.base_model.{i}."
        model = BaseModel(
            name=_str(fields.get(prefix + "name")),
            organization=_str(fields.get(prefix + "organization")),
            repo_url=_str(fields.get(prefix + "repo_url")),
        )
        if model != BaseModel():
            found.append(model)
    return tuple(found)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _build(
    path: Path,
    version: int,
    fields: dict[str, Any],
    tensors: _TensorSummary,
    tokens: dict[int, str],
) -> GGUFMetadata:
    arch = _str(fields.get("general.architecture"))
    file_type = _int(fields.get("general.file_type"))
    if file_type is not None:
        quant: str | None = _file_type_name(file_type)
    elif tensors.weight_types:
        quant = tensors.weight_types.most_common(1)[0][0]
    else:
        quant = None
    bos_id = _int(fields.get("tokenizer.ggml.bos_token_id"))
    eos_id = _int(fields.get("tokenizer.ggml.eos_token_id"))
    params = _int(fields.get("general.parameter_count"))
    split_count = _int(fields.get("split.count")) or 1
    if params is None and tensors.params and split_count == 1:
        params = tensors.params
    return GGUFMetadata(
        path=path,
        version=version,
        architecture=arch,
        name=_str(fields.get("general.name")),
        context_length=_int(fields.get(f"{arch}.context_length")) if arch else None,
        file_type=file_type,
        quantization=quant,
        parameter_count=params,
        size_label=_str(fields.get("general.size_label")),
        chat_template=_str(fields.get("tokenizer.chat_template")),
        bos_token=tokens.get(bos_id) if bos_id is not None else None,
        eos_token=tokens.get(eos_id) if eos_id is not None else None,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        basename=_str(fields.get("general.basename")),
        finetune=_str(fields.get("general.finetune")),
        organization=_str(fields.get("general.organization")),
        base_models=_base_models(fields),
        tensor_count=tensors.count,
        split_count=split_count,
        fields=fields,
    )


def split_info(path: str | Path) -> tuple[int, int] | None:
    """``(index, count)`` (1-based) for a split file named ``*-00001-of-00003.gguf``, else None."""
    match = _SPLIT_RE.search(str(path))
    if not match:
        return None
    return int(match.group(1)), int(match.group(2))


_CACHE: dict[tuple[str, int, int], GGUFMetadata] = {}


def read_metadata_cached(path: str | Path) -> GGUFMetadata:
    """:func:`read_metadata`, remembered per (path, size, mtime) for the life of the process."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        return read_metadata(path)  # raises the clear error
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if (hit := _CACHE.get(key)) is not None:
        return hit
    meta = read_metadata(path)
    if len(_CACHE) > 256:
        _CACHE.clear()
    _CACHE[key] = meta
    return meta


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor's data is: its numpy shape (GGUF's dimensions reversed), type and the
    absolute byte offset in the file."""

    shape: tuple[int, ...]
    qtype: GGMLQuantizationType
    offset: int
    nbytes: int


def read_tensor_layout(path: str | Path) -> tuple[dict[str, Any], dict[str, TensorInfo]]:
    """Scalar key/values and every tensor's layout (for loading weights without
    ``gguf.GGUFReader``'s per-element walk). Raises :class:`ModelFileError`."""
    path = Path(path)
    buf, size = _open_buffer(path)
    try:
        cur, _ = _header(path, buf)
        tensor_count, kv_count = cur.u64(), cur.u64()
        if kv_count > _MAX_KV or tensor_count > _MAX_TENSORS:
            raise _Corrupt(f"implausible counts ({kv_count} keys, {tensor_count} tensors)")
        fields: dict[str, Any] = {}
        for _ in range(kv_count):
            key = cur.string()
            fields[key] = _read_value(cur, _value_type(cur.u32()), key, {})
        raw = []
        for _ in range(tensor_count):
            name = cur.string()
            dims = tuple(cur.u64() for _ in range(cur.u32()))
            raw.append((name, dims, cur.u32(), cur.u64()))
        alignment = fields.get("general.alignment") or GGUF_DEFAULT_ALIGNMENT
        start = -(-cur.pos // alignment) * alignment
        tensors = {}
        for name, dims, raw_type, offset in raw:
            qtype = GGMLQuantizationType(raw_type)
            block, type_size = GGML_QUANT_SIZES[qtype]
            elements = 1
            for d in dims:
                elements *= d
            nbytes = elements * type_size // block
            if start + offset + nbytes > size:
                raise _Truncated
            tensors[name] = TensorInfo(tuple(reversed(dims)), qtype, start + offset, nbytes)
        return fields, tensors
    except _Truncated:
        raise ModelFileError(f"{path.name} is truncated or corrupt; re-download it") from None
    except (_Corrupt, ValueError) as exc:
        raise ModelFileError(f"{path.name} has a corrupt GGUF header: {exc}") from None
    finally:
        if isinstance(buf, mmap.mmap):
            buf.close()
