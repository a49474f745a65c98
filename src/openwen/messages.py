"""Pure value types shared by every layer: messages, tool calls, and streamed engine events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "developer", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "cancelled", "error"]


@dataclass(frozen=True)
class ToolCall:
    """A call the model asked for. ``arguments`` is the JSON text of the arguments object."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Message:
    """One chat message. ``reasoning`` holds an assistant's thinking text, apart from content."""

    role: Role
    content: str | None = None
    reasoning: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None

    def to_template_dict(self) -> dict[str, Any]:
        """The dict form chat templates expect (OpenAI shape, arguments parsed where possible)."""
        out: dict[str, Any] = {"role": self.role, "content": self.content or ""}
        if self.reasoning:
            out["reasoning_content"] = self.reasoning
        if self.tool_calls:
            out["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": _maybe_json(c.arguments)},
                }
                for c in self.tool_calls
            ]
        if self.tool_call_id:
            out["tool_call_id"] = self.tool_call_id
        if self.name:
            out["name"] = self.name
        return out


def _maybe_json(text: str) -> Any:
    import json

    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return text


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Timings:
    """Milliseconds. ``ttft_ms`` is from request accepted to first generated token."""

    queue_ms: float = 0.0
    prompt_ms: float = 0.0
    decode_ms: float = 0.0
    ttft_ms: float = 0.0


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    logprob: float
    bytes: list[int] | None = None
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class TextDelta:
    text: str
    logprobs: tuple[TokenLogprob, ...] = ()
    kind: Literal["text"] = "text"


@dataclass(frozen=True)
class ReasoningDelta:
    text: str
    kind: Literal["reasoning"] = "reasoning"


@dataclass(frozen=True)
class ToolCallEvent:
    """A complete tool call. ``index`` counts tool calls within one answer from 0."""

    index: int
    call: ToolCall
    kind: Literal["tool_call"] = "tool_call"


@dataclass(frozen=True)
class Done:
    finish_reason: FinishReason
    usage: Usage = field(default_factory=Usage)
    timings: Timings = field(default_factory=Timings)
    kind: Literal["done"] = "done"
    stop_sequence: str | None = None  # the request's stop string that ended it, if one did


StreamEvent = TextDelta | ReasoningDelta | ToolCallEvent | Done


# -- agent events: the agent loop (openwen.chat.agent) yields these beside the engine's ------


@dataclass(frozen=True)
class ToolImage:
    """An image a tool produced (a matplotlib figure from the code interpreter)."""

    mime_type: str
    data: bytes


@dataclass(frozen=True)
class ToolResultEvent:
    """A tool call the agent ran: what was called, what the model was told, how long it took.

    ``content`` is the text the model sees. ``error`` is set when the call did not succeed (bad
    arguments, unknown tool, the tool failed or timed out, the user declined); ``content`` then
    says so too. ``source`` is ``builtin`` or ``mcp:<server>``.
    """

    call: ToolCall
    content: str
    error: str | None = None
    duration_ms: float = 0.0
    step: int = 1
    source: str = "builtin"
    images: tuple[ToolImage, ...] = ()
    kind: Literal["tool_result"] = "tool_result"


@dataclass(frozen=True)
class AgentStepEvent:
    """One model round of an agent run ended with tool calls (the agent runs them next)."""

    step: int
    tool_calls: tuple[ToolCall, ...]
    usage: Usage = field(default_factory=Usage)
    timings: Timings = field(default_factory=Timings)
    kind: Literal["agent_step"] = "agent_step"


@dataclass(frozen=True)
class MessageEvent:
    """A message of the conversation is complete (assistant turn, tool result): persist it."""

    message: Message
    step: int = 1
    kind: Literal["message"] = "message"


@dataclass(frozen=True)
class AgentLimitEvent:
    """The agent stopped at its step limit without a final answer; ``message`` says so plainly."""

    max_steps: int
    message: str
    kind: Literal["agent_limit"] = "agent_limit"


AgentEvent = StreamEvent | ToolResultEvent | AgentStepEvent | MessageEvent | AgentLimitEvent
