"""The request every interface hands the answer path: :class:`ChatRequest`, its :class:`Sampling`
and :class:`ToolChoice`. Pure values beside :mod:`openwen.messages`, so formats, knowledge, the
CLI and every API dialect build requests without importing the engines."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from openwen.messages import Message

ToolChoice = Literal["auto", "none", "required"] | dict[str, Any]


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters. ``None`` means the engine's (or model family's) default."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repeat_penalty: float | None = None
    seed: int | None = None


@dataclass(frozen=True)
class ChatRequest:
    """What an engine is asked to do.

    ``tools`` are OpenAI tool definitions (``{"type": "function", "function": {...}}``).
    ``response_format`` is the OpenAI object (``{"type": "json_schema", "json_schema": {...}}``).
    ``thinking`` switches reasoning on or off for thinking models; ``None`` keeps the model default.
    ``logprobs``/``top_logprobs`` ask for per-token log probabilities of the answer text.
    ``prompt`` (legacy ``/v1/completions``) is raw text sent without a chat template; ``messages``
    is then empty.
    ``cache_salt`` (as vLLM's) partitions the prefix cache: a prompt prefix cached under one salt
    is never reused under another, and ``cached_tokens`` counts hits under the same salt only.
    Interfaces set it with :func:`openwen.cache_salt.cache_salt_for`; ``None`` is its own
    partition (local use without users).
    """

    messages: tuple[Message, ...] = ()
    prompt: str | None = None
    model: str | None = None
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool = True
    sampling: Sampling = field(default_factory=Sampling)
    stop: tuple[str, ...] = ()
    max_tokens: int | None = None
    response_format: dict[str, Any] | None = None
    thinking: bool | None = None
    logprobs: bool = False
    top_logprobs: int = 0
    cache_salt: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
