"""Request models of the Anthropic Messages API, fields in the order of Anthropic's reference.
Unknown fields (``context_management``, ``output_config``, ``service_tier``, ...) are ignored
and logged, as Claude Code sends many."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from openwen.server.openai.base import Lenient


class Block(Lenient):
    """A content block; which fields matter depends on ``type``."""

    type: str
    text: str | None = None
    # tool_use
    id: str | None = None
    name: str | None = None
    input: dict[str, Any] | None = None
    # tool_result
    tool_use_id: str | None = None
    content: str | list[Block] | None = None
    is_error: bool | None = None
    # thinking
    thinking: str | None = None
    signature: str | None = None


class MessageParam(Lenient):
    role: Literal["user", "assistant"]
    content: str | list[Block]


class ToolParam(Lenient):
    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    type: str | None = None  # "custom"; server tools (web_search, bash, ...) are refused


class ToolChoiceParam(Lenient):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class ThinkingParam(Lenient):
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: int | None = None


class MessagesRequest(Lenient):
    model: str = Field(min_length=1)
    messages: list[MessageParam]
    max_tokens: int = Field(ge=1)
    system: str | list[Block] | None = None
    metadata: dict[str, Any] | None = None
    stop_sequences: list[str] | None = None
    stream: bool = False
    temperature: float | None = Field(None, ge=0, le=1)
    thinking: ThinkingParam | None = None
    tool_choice: ToolChoiceParam | None = None
    tools: list[ToolParam] | None = None
    top_k: int | None = Field(None, ge=0)
    top_p: float | None = Field(None, ge=0, le=1)


class CountTokensRequest(Lenient):
    model: str = Field(min_length=1)
    messages: list[MessageParam]
    system: str | list[Block] | None = None
    thinking: ThinkingParam | None = None
    tool_choice: ToolChoiceParam | None = None
    tools: list[ToolParam] | None = None
