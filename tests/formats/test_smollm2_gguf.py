"""The bundled SmolLM2 GGUF: its real chat template and tokenizer through the formats layer.

The file is opened the way the embedded engine opens it (llama.cpp, here vocabulary only, which
takes a fraction of a second), and its metadata is handed to ``format_for``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from openwen.formats import GenericFormat, IncrementalDetokenizer, format_for
from openwen.messages import Message

llama_cpp = pytest.importorskip("llama_cpp")


@pytest.fixture(scope="module")
def smol_vocab(bundled_model: Path) -> Any:
    return llama_cpp.Llama(model_path=str(bundled_model), vocab_only=True, verbose=False)


@pytest.fixture(scope="module")
def smol_meta(smol_vocab: Any) -> dict[str, Any]:
    meta = smol_vocab.metadata
    vocab = smol_vocab._model
    return {
        "chat_template": meta["tokenizer.chat_template"],
        "architecture": meta["general.architecture"],
        "model_name": meta.get("general.name"),
        "bos_token": vocab.token_get_text(smol_vocab.token_bos()),
        "eos_token": vocab.token_get_text(smol_vocab.token_eos()),
    }


@pytest.fixture(scope="module")
def smol_format(smol_meta: dict[str, Any]) -> GenericFormat:
    fmt = format_for(**smol_meta)
    assert isinstance(fmt, GenericFormat)
    return fmt


def test_smollm2_metadata_is_what_the_registry_needs(smol_meta: dict[str, Any]) -> None:
    assert smol_meta["architecture"] == "llama"
    assert "<|im_start|>" in smol_meta["chat_template"]
    assert smol_meta["eos_token"] == "<|im_end|>"


def test_smollm2_template_renders_chatml_with_the_system_prompt(smol_format: GenericFormat) -> None:
    messages = [Message("system", "You are a pirate. 🏴‍☠️"), Message("user", "你好，船长！")]
    rendered = smol_format.render(messages)
    assert rendered.text == (
        "<|im_start|>system\nYou are a pirate. 🏴‍☠️<|im_end|>\n"
        "<|im_start|>user\n你好，船长！<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert rendered.thinking is None and rendered.thinking_open is False
    assert "<|im_end|>" in smol_format.stop_strings


def test_smollm2_template_adds_its_default_system_prompt(smol_format: GenericFormat) -> None:
    text = smol_format.render([Message("user", "hi")]).text
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert text.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")


def test_smollm2_multi_turn_without_generation_prompt(smol_format: GenericFormat) -> None:
    messages = [
        Message("system", "S"),
        Message("user", "U1"),
        Message("assistant", "A1"),
        Message("user", "U2"),
    ]
    text = smol_format.render(messages, add_generation_prompt=False).text
    assert text == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU1<|im_end|>\n"
        "<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nU2<|im_end|>\n"
    )


def test_real_tokenizer_pieces_split_characters_and_detokenizer_rejoins(smol_vocab: Any) -> None:
    llm = smol_vocab
    text = "你好，世界！熊猫 🐼 说：“谢谢” 🎉"
    tokens = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
    pieces = [llm.detokenize([t]) for t in tokens]
    assert b"".join(pieces) == text.encode("utf-8")
    split = [p for p in pieces if _not_utf8(p)]
    assert split, "the tokenizer should split some character across tokens"
    detok = IncrementalDetokenizer(lambda t: llm.detokenize([t]))
    outputs = [detok.add(t) for t in tokens]
    assert all("\ufffd" not in out for out in outputs)
    assert "".join(outputs) + detok.flush() == text


def _not_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False
