"""GGUF metadata: the real bundled model, synthetic files with chosen fields, and broken files."""

from __future__ import annotations

import struct
from pathlib import Path

import gguf
import pytest

from openwen.errors import ModelFileError
from openwen.models.gguf_meta import read_metadata, read_metadata_cached, split_info


def test_bundled_model_metadata(bundled_model: Path) -> None:
    meta = read_metadata(bundled_model)
    assert meta.architecture == "llama"
    assert meta.quantization == "Q4_1"
    assert meta.file_type == int(gguf.LlamaFileType.MOSTLY_Q4_1)
    assert meta.context_length == 8192
    assert meta.bos_token == "<|im_start|>"
    assert meta.eos_token == "<|im_end|>"
    assert meta.chat_template is not None and "<|im_start|>" in meta.chat_template
    # ~135M parameters, counted from the tensor shapes
    assert meta.parameter_count is not None and 130e6 < meta.parameter_count < 140e6


def test_bundled_model_agrees_with_gguf_reader(bundled_model: Path) -> None:
    """The fast header walk reads the same values as the gguf package's full reader."""
    reader = gguf.GGUFReader(bundled_model)
    meta = read_metadata(bundled_model)
    field = reader.get_field("llama.context_length")
    assert field is not None and meta.context_length == field.contents()
    tokens = reader.get_field("tokenizer.ggml.tokens")
    assert tokens is not None and meta.bos_token_id is not None and meta.eos_token_id is not None
    assert meta.bos_token == tokens.contents(meta.bos_token_id)
    assert meta.eos_token == tokens.contents(meta.eos_token_id)
    assert meta.tensor_count == len(reader.tensors)
    assert meta.parameter_count == sum(int(t.n_elements) for t in reader.tensors)


def test_synthetic_fields_and_lineage(tmp_path: Path, make_gguf) -> None:
    path = make_gguf(
        tmp_path / "m.gguf",
        arch="qwen3",
        name="Qwen3 0.6B Tuned",
        context_length=40960,
        file_type=int(gguf.LlamaFileType.MOSTLY_Q4_K_M),
        tokens=["a", "<|endoftext|>", "<|im_end|>", "b"],
        bos_id=1,
        eos_id=2,
        chat_template="{{ messages }}",
        extra={
            "general.basename": "Qwen3",
            "general.finetune": "Tuned",
            "general.size_label": "0.6B",
            "general.base_model.count": 2,
            "general.base_model.0.name": "Qwen3 0.6B",
            "general.base_model.0.organization": "Qwen",
            "general.base_model.0.repo_url": "https://huggingface.co/Qwen/Qwen3-0.6B",
            "general.base_model.1.repo_url": "https://huggingface.co/acme/helper-7b",
        },
    )
    meta = read_metadata(path)
    assert meta.architecture == "qwen3"
    assert meta.name == "Qwen3 0.6B Tuned"
    assert meta.context_length == 40960
    assert meta.quantization == "Q4_K_M"
    assert (meta.bos_token, meta.eos_token) == ("<|endoftext|>", "<|im_end|>")
    assert meta.chat_template == "{{ messages }}"
    assert (meta.basename, meta.finetune, meta.size_label) == ("Qwen3", "Tuned", "0.6B")
    assert [b.label for b in meta.base_models] == ["Qwen/Qwen3 0.6B", "acme/helper-7b"]
    assert meta.base_models[0].repo_url == "https://huggingface.co/Qwen/Qwen3-0.6B"
    assert meta.lineage == "from Qwen/Qwen3 0.6B, acme/helper-7b"
    assert meta.to_dict()["base_models"][1]["repo_url"].endswith("helper-7b")


def test_missing_optional_fields(tmp_path: Path, make_gguf) -> None:
    path = make_gguf(
        tmp_path / "bare.gguf",
        name=None,
        context_length=None,
        chat_template=None,
        bos_id=None,
        eos_id=None,
        file_type=None,
    )
    meta = read_metadata(path)
    assert meta.name is None and meta.context_length is None and meta.chat_template is None
    assert meta.bos_token is None and meta.eos_token is None
    assert meta.lineage == ""
    assert meta.quantization is None  # no file type, and no 2-D weight besides the embedding


def test_quantisation_inferred_from_tensor_types(tmp_path: Path, make_gguf) -> None:
    path = make_gguf(
        tmp_path / "q.gguf", file_type=None, quantized_weight=gguf.GGMLQuantizationType.Q8_0
    )
    assert read_metadata(path).quantization == "Q8_0"


def test_missing_file() -> None:
    with pytest.raises(ModelFileError, match="not found"):
        read_metadata("/nonexistent/model.gguf")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="directory"):
        read_metadata(tmp_path)


@pytest.mark.parametrize("content", [b"", b"hello, I am a text file\n" * 10, b"GGU"])
def test_not_gguf(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "fake.gguf"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match="not a GGUF model file"):
        read_metadata(path)


@pytest.mark.parametrize("keep", [8, 30, 200, 2000])
def test_truncated_header(tmp_path: Path, make_gguf, keep: int) -> None:
    data = make_gguf(tmp_path / "full.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[:keep])
    with pytest.raises(ModelFileError, match="truncated"):
        read_metadata(cut)


def test_truncated_tensor_data(tmp_path: Path, make_gguf) -> None:
    """A download that stopped inside the tensor data is caught, not just a broken header."""
    data = make_gguf(tmp_path / "full.gguf", payload_floats=4096).read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[:-1000])
    with pytest.raises(ModelFileError, match="truncated") as info:
        read_metadata(cut)
    assert str(len(data) - 1000) in info.value.message


def test_corrupt_counts(tmp_path: Path) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 2**40) + b"\0" * 64)
    with pytest.raises(ModelFileError, match="corrupt"):
        read_metadata(path)


def test_corrupt_value_type(tmp_path: Path) -> None:
    key = b"general.name"
    body = struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key + struct.pack("<I", 99)
    path = tmp_path / "bad.gguf"
    path.write_bytes(b"GGUF" + body + b"\0" * 64)
    with pytest.raises(ModelFileError, match="corrupt"):
        read_metadata(path)


def test_unsupported_version(tmp_path: Path) -> None:
    path = tmp_path / "v1.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<III", 1, 0, 0) + b"\0" * 64)
    with pytest.raises(ModelFileError, match="version 1"):
        read_metadata(path)


def test_cache_notices_a_changed_file(tmp_path: Path, make_gguf) -> None:
    path = make_gguf(tmp_path / "m.gguf", context_length=1024)
    assert read_metadata_cached(path).context_length == 1024
    make_gguf(path, context_length=2048, payload_floats=2048)
    assert read_metadata_cached(path).context_length == 2048


def test_split_info() -> None:
    assert split_info("a/qwen2.5-7b-instruct-q4_k_m-00001-of-00002.gguf") == (1, 2)
    assert split_info("Qwen3-0.6B-Q8_0.gguf") is None
