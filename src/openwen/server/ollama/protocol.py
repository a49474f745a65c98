"""Request models of the Ollama API, fields in the order of Ollama's API reference. Unknown
fields are ignored (and logged), as everywhere in openwen; extensions are marked."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from openwen.server.openai.base import Lenient


class Options(Lenient):
    """The ``options`` object: the runtime parameters openwen honours (others are ignored)."""

    num_ctx: int | None = Field(None, ge=1)
    num_predict: int | None = None  # -1 (or -2): no limit beyond the context
    temperature: float | None = Field(None, ge=0, le=2)
    top_k: int | None = Field(None, ge=0)
    top_p: float | None = Field(None, ge=0, le=1)
    min_p: float | None = Field(None, ge=0, le=1)
    repeat_penalty: float | None = Field(None, ge=0)
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    stop: list[str] | str | None = None


class ToolCallFunction(Lenient):
    name: str
    arguments: dict[str, Any] | str = Field(default_factory=dict)


class ToolCallIn(Lenient):
    function: ToolCallFunction


class ChatMessage(Lenient):
    role: str = Field(pattern="^(system|user|assistant|tool)$")
    content: str | None = ""
    thinking: str | None = None
    images: list[str] | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_name: str | None = None


class ChatRequestBody(Lenient):
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(default_factory=list)
    tools: list[dict[str, Any]] | None = None
    think: bool | str | None = None  # true/false, or "low"/"medium"/"high" (gpt-oss style)
    format: str | dict[str, Any] | None = None  # "json" or a JSON schema
    options: Options | None = None
    stream: bool = True
    keep_alive: str | int | float | None = None


class GenerateRequestBody(Lenient):
    model: str = Field(min_length=1)
    prompt: str | None = None
    suffix: str | None = None
    images: list[str] | None = None
    think: bool | str | None = None
    format: str | dict[str, Any] | None = None
    options: Options | None = None
    system: str | None = None
    template: str | None = None
    stream: bool = True
    raw: bool = False
    keep_alive: str | int | float | None = None
    context: list[int] | None = None


class EmbedRequestBody(Lenient):
    model: str = Field(min_length=1)
    input: str | list[str] = Field(default_factory=list)
    truncate: bool = True
    options: Options | None = None
    keep_alive: str | int | float | None = None
    dimensions: int | None = None


class LegacyEmbeddingsBody(Lenient):
    model: str = Field(min_length=1)
    prompt: str = ""
    options: Options | None = None
    keep_alive: str | int | float | None = None


class ModelBody(Lenient):
    """``/api/show``, ``/api/delete``, ``/api/pull``: a model name (``name`` is the old key)."""

    model: str | None = None
    name: str | None = None
    verbose: bool = False
    insecure: bool = False
    stream: bool = True

    def model_name(self) -> str:
        from openwen.errors import InvalidRequestError

        chosen = (self.model or self.name or "").strip()
        if not chosen:
            raise InvalidRequestError("model is required", param="model")
        return chosen
