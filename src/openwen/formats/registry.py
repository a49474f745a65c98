"""Pick the chat format adapter for a model from its GGUF metadata."""

from __future__ import annotations

from openwen.formats.base import ChatFormat
from openwen.formats.generic import GenericFormat
from openwen.formats.qwen import QwenFormat

QWEN_ARCHITECTURES = frozenset(
    {
        "qwen",
        "qwen2",
        "qwen2moe",
        "qwen2vl",
        "qwen3",
        "qwen3moe",
        "qwen3next",
        "qwen3vl",
        "qwen3vlmoe",
        "qwen35",
        "qwen35moe",
    }
)


_QWEN_MARKERS = ("You are Qwen", "ns.last_query_index", "<function=example_function_name>")


def looks_like_qwen_template(chat_template: str | None) -> bool:
    """A ChatML template written the Qwen way: it names Qwen, carries a Qwen3-only construct, or
    has both ``<think>`` and ``<tool_call>`` (QwQ, Qwen3 variants). Hermes (tool calls, no
    thinking) and SmolLM3 (thinking, no tool-call block) templates stay generic."""
    if not chat_template or "<|im_start|>" not in chat_template:
        return False
    if any(marker in chat_template for marker in _QWEN_MARKERS):
        return True
    return "<think>" in chat_template and "<tool_call>" in chat_template


def is_qwen(chat_template: str | None, *, architecture: str | None, model_name: str | None) -> bool:
    arch = (architecture or "").lower()
    if arch in QWEN_ARCHITECTURES or arch.startswith("qwen"):
        return True
    if looks_like_qwen_template(chat_template):
        return True
    # a Qwen fine-tune in another architecture's clothing still needs ChatML to be Qwen's
    return "qwen" in (model_name or "").lower() and "<|im_start|>" in (chat_template or "")


def format_for(
    chat_template: str | None,
    *,
    architecture: str | None,
    bos_token: str,
    eos_token: str,
    model_name: str | None,
) -> ChatFormat:
    """The adapter for a model: Qwen for Qwen architectures or Qwen-looking templates, else
    generic. ``chat_template`` is GGUF ``tokenizer.chat_template`` (``None``: ChatML fallback)."""
    cls = (
        QwenFormat
        if is_qwen(chat_template, architecture=architecture, model_name=model_name)
        else GenericFormat
    )
    return cls(chat_template, bos_token=bos_token, eos_token=eos_token, model_name=model_name)
