"""Terminal output for streamed answers: Markdown in a terminal, plain text when piped."""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.markdown import Markdown
from rich.text import Text

from openwen.messages import (
    AgentLimitEvent,
    Done,
    ReasoningDelta,
    TextDelta,
    ToolCallEvent,
    ToolResultEvent,
)


class AnswerView:
    """Shows one streaming answer. Reasoning is dimmed while it streams and collapses afterwards."""

    def __init__(self, console: Console | None = None, *, show_reasoning: bool = True,
                 plain_out: TextIO | None = None):
        self.console = console or Console()
        self.plain = plain_out is not None or not self.console.is_terminal
        self.out: TextIO = plain_out or sys.stdout
        self.show_reasoning = show_reasoning
        self.text = ""
        self.reasoning = ""
        self.tool_calls: list[ToolCallEvent] = []
        self.tool_results: list[ToolResultEvent] = []
        self.done: Done | None = None
        self._live: Live | None = None

    def __enter__(self) -> AnswerView:
        if not self.plain:
            self._live = Live(self._renderable(), console=self.console, refresh_per_second=12,
                              vertical_overflow="visible")
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self._renderable(final=True))
            self._live.__exit__(None, None, None)
        elif self.text and not self.text.endswith("\n"):
            self.out.write("\n")
            self.out.flush()

    def add(self, event: object) -> None:
        if isinstance(event, TextDelta):
            self.text += event.text
            self._plain_write(event.text)
        elif isinstance(event, ReasoningDelta):
            self.reasoning += event.text
        elif isinstance(event, ToolCallEvent):
            self.tool_calls.append(event)
            self._plain_write(f"\n[tool call] {event.call.name}({event.call.arguments})\n")
        elif isinstance(event, ToolResultEvent):
            self.tool_results.append(event)
            self._plain_write(f"[tool result] {_short(event.content)}\n")
        elif isinstance(event, AgentLimitEvent):
            self.text += f"\n\n{event.message}"
            self._plain_write(f"\n{event.message}\n")
        elif isinstance(event, Done):
            self.done = event
        if self._live is not None:
            self._live.update(self._renderable())

    def _plain_write(self, text: str) -> None:
        if self.plain:
            self.out.write(text)
            self.out.flush()

    def _renderable(self, final: bool = False) -> Group:
        parts: list[object] = []
        if self.reasoning and self.show_reasoning:
            if final or self.text:
                words = len(self.reasoning.split())
                parts.append(Text(f"▸ thought ({words} words; /thinking to expand)", style="dim"))
            else:
                parts.append(Text(self.reasoning, style="dim italic"))
        results = {r.call.id: r for r in self.tool_results}
        for call in self.tool_calls:
            parts.append(Text(f"⚙ {call.call.name}({call.call.arguments})", style="cyan"))
            if (result := results.get(call.call.id)) is not None:
                style = "red" if result.error else "dim cyan"
                parts.append(Text(f"  → {_short(result.content)} ({result.duration_ms:.0f} ms)",
                                  style=style))
        if self.text:
            parts.append(Markdown(self.text))
        return Group(*parts)  # type: ignore[arg-type]


def _short(text: str, limit: int = 300) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"
