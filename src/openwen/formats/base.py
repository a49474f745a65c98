"""Interfaces of the formats layer: render a prompt, parse model output incrementally."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from openwen.messages import Message, ReasoningDelta, TextDelta, ToolCallEvent
from openwen.requests import Sampling

ParsedEvent = TextDelta | ReasoningDelta | ToolCallEvent


@dataclass(frozen=True)
class RenderedPrompt:
    """A prompt ready for tokenising.

    ``thinking_open`` is true when the rendered generation prompt already opened a ``<think>``
    block, so the model's first output is reasoning. ``thinking`` is the effective on/off after
    soft switches.
    """

    text: str
    thinking_open: bool = False
    thinking: bool | None = None


class OutputParser(Protocol):
    """Turns decoded text pieces (arbitrary chunk boundaries) into events."""

    def feed(self, text: str) -> list[ParsedEvent]: ...

    def finish(self) -> list[ParsedEvent]:
        """Flush held-back text at end of generation (partial tags become plain text)."""
        ...

    @property
    def tool_call_count(self) -> int: ...


class ChatFormat(Protocol):
    """A model family adapter."""

    family: str
    stop_strings: tuple[str, ...]

    def render(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[dict[str, Any]] = (),
        enable_thinking: bool | None = None,
        add_generation_prompt: bool = True,
    ) -> RenderedPrompt: ...

    def parser(self, prompt: RenderedPrompt, *, tools_enabled: bool) -> OutputParser: ...

    def sampling_defaults(self, thinking: bool | None) -> Sampling: ...


class PlainParser:
    """Passes text through unparsed (raw completions)."""

    tool_call_count = 0

    def feed(self, text: str) -> list[ParsedEvent]:
        return [TextDelta(text)] if text else []

    def finish(self) -> list[ParsedEvent]:
        return []
