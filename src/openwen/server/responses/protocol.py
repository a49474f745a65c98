"""OpenAI Responses API request models (``POST /v1/responses``), lenient as every dialect's.

Field order follows the OpenAI API reference (alphabetical there). Unknown fields are ignored and
logged (Codex CLI sends many: ``include``, ``prompt_cache_key``, ``client_metadata`` ...).
``input`` items are validated one by one in :mod:`openwen.server.responses.translate`, so an
item type this server has no use for (a hosted tool's call) is skipped rather than refused.
Responses are plain JSON objects built in :mod:`openwen.server.responses.render`; the tests
validate them against the official SDK's types.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from openwen.server.openai.base import Lenient
from openwen.server.openai.protocol import FunctionDefinition, ReasoningEffort

MAX_METADATA = 16
TOOL_TYPES_IGNORED = frozenset({
    "web_search", "web_search_preview", "file_search", "computer_use_preview", "code_interpreter",
    "image_generation", "local_shell", "mcp", "custom", "shell", "apply_patch",
})


# -- input items ---------------------------------------------------------------------------------


class ContentPart(Lenient):
    """A part of a message's ``content``: text in (``input_text``), text out (``output_text``),
    or a ``refusal``. Images, files and audio are refused: this server reads text only."""

    type: str
    text: str | None = None
    refusal: str | None = None

    @model_validator(mode="after")
    def _text_only(self) -> ContentPart:
        if self.type in ("input_text", "output_text", "text", "summary_text", "reasoning_text"):
            if self.text is None:
                raise ValueError(f"a {self.type} part needs text")
        elif self.type == "refusal":
            self.text = self.refusal or ""
        elif self.type in ("input_image", "input_file", "input_audio"):
            raise ValueError(f"{self.type} parts are not supported: this server reads text only")
        else:
            raise ValueError(f"unknown content part type {self.type!r}")
        return self


class MessageItem(Lenient):
    type: Literal["message"] | None = None
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ContentPart]
    id: str | None = None
    status: str | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text or "" for part in self.content)


class FunctionCallItem(Lenient):
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str = ""
    id: str | None = None
    status: str | None = None


class FunctionCallOutputItem(Lenient):
    type: Literal["function_call_output"]
    call_id: str
    output: str | list[ContentPart]
    id: str | None = None

    def text(self) -> str:
        if isinstance(self.output, str):
            return self.output
        return "".join(part.text or "" for part in self.output)


class ReasoningItem(Lenient):
    type: Literal["reasoning"]
    id: str | None = None
    summary: list[ContentPart] = Field(default_factory=list)
    content: list[ContentPart] | None = None
    encrypted_content: str | None = None

    def text(self) -> str:
        parts = self.content or self.summary
        return "\n".join(part.text or "" for part in parts)


InputItem = MessageItem | FunctionCallItem | FunctionCallOutputItem | ReasoningItem


# -- tools and formats ---------------------------------------------------------------------------


class FunctionTool(FunctionDefinition):
    """A Responses function tool: Chat Completions' function definition, flattened, plus
    ``type``."""

    type: Literal["function"]

    def to_dict(self) -> dict[str, Any]:
        function = {"name": self.name, "description": self.description,
                    "parameters": self.parameters, "strict": self.strict}
        return {"type": "function",
                "function": {k: v for k, v in function.items() if v is not None}}


class NamedFunctionChoice(Lenient):
    type: Literal["function"]
    name: str


class TextFormat(Lenient):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> TextFormat:
        if self.type == "json_schema" and self.schema_ is None:
            raise ValueError("type 'json_schema' needs schema (a JSON Schema object)")
        return self


class TextConfig(Lenient):
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class ReasoningConfig(Lenient):
    effort: ReasoningEffort | None = None
    summary: str | None = None


# -- POST /v1/responses --------------------------------------------------------------------------


class ResponseCreateRequest(Lenient):
    """``POST /v1/responses``."""

    background: bool | None = None
    include: list[str] | None = None
    input: str | list[Any] | None = None
    instructions: str | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    metadata: dict[str, str] | None = None
    model: str | None = None
    parallel_tool_calls: bool | None = None
    previous_response_id: str | None = None
    reasoning: ReasoningConfig | None = None
    store: bool | None = True
    stream: bool | None = False
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    text: TextConfig | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedFunctionChoice | None = None
    tools: list[dict[str, Any]] | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    truncation: Literal["auto", "disabled"] | None = None
    user: str | None = None

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None and len(value) > MAX_METADATA:
            raise ValueError(f"at most {MAX_METADATA} metadata keys")
        if value is not None and any(len(k) > 64 or len(v) > 512 for k, v in value.items()):
            raise ValueError("metadata keys are at most 64 characters, values at most 512")
        return value

    @property
    def stored(self) -> bool:
        return self.store is not False

    @property
    def logprobs(self) -> bool:
        return "message.output_text.logprobs" in (self.include or ()) or bool(self.top_logprobs)
