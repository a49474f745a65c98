"""An incremental parser for Qwen-style output: ``<think>`` reasoning, ``<tool_call>`` blocks, text.

It accepts decoded text in chunks split anywhere (even inside a tag) and returns events as soon as
they are certain. Only text that could still be the start of a tag is held back (``"<tool_c"``),
plus trailing newlines, which Qwen puts around tags and which are dropped there:

- ``<think>`` opens reasoning only at the start of the output (after whitespace); when the prompt
  already opened it (``RenderedPrompt.thinking_open``) the parser starts inside reasoning and only
  ``</think>`` appears. Newlines just inside the block and just after ``</think>`` are dropped.
- ``<tool_call>...</tool_call>`` becomes a :class:`ToolCallEvent` when ``tools_enabled`` (JSON or
  XML body, see :mod:`openwen.formats.toolcalls`); newlines between text and calls are dropped.
- Anything malformed (bad JSON, an unclosed or partial tag at the end) is passed on as text,
  verbatim. An unclosed ``<think>`` at the end means everything after it was reasoning.
"""

from __future__ import annotations

from enum import Enum

from openwen.formats.base import ParsedEvent
from openwen.formats.toolcalls import ToolSchemas, parse_tool_call
from openwen.messages import ReasoningDelta, TextDelta, ToolCallEvent

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
TOOL_OPEN = "<tool_call>"
TOOL_CLOSE = "</tool_call>"


class _State(Enum):
    TEXT = "text"
    REASONING = "reasoning"
    TOOL = "tool"


def partial_tag_length(text: str, tags: tuple[str, ...]) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of one of ``tags``."""
    best = 0
    for tag in tags:
        for k in range(min(len(tag) - 1, len(text)), best, -1):
            if text.endswith(tag[:k]):
                best = k
                break
    return best


class TaggedOutputParser:
    """:class:`openwen.formats.base.OutputParser` for ``<think>`` / ``<tool_call>`` output."""

    def __init__(
        self,
        *,
        tools_enabled: bool,
        thinking_open: bool = False,
        parse_thinking: bool = True,
        tool_schemas: ToolSchemas | None = None,
    ):
        self._tools_enabled = tools_enabled
        self._schemas = tool_schemas or {}
        self._state = _State.REASONING if thinking_open else _State.TEXT
        self._think_allowed = parse_thinking and not thinking_open
        self._strip_leading = True
        self._buf = ""
        self._held_ws = ""  # newlines dropped before a <tool_call>, restored if it is malformed
        self._count = 0
        self._out: list[ParsedEvent] = []

    @property
    def tool_call_count(self) -> int:
        return self._count

    def feed(self, text: str) -> list[ParsedEvent]:
        self._buf += text
        while self._step():
            pass
        return self._take()

    def finish(self) -> list[ParsedEvent]:
        while self._step():
            pass
        buf, self._buf = self._buf, ""
        if self._state is _State.REASONING:
            self._reasoning(buf.rstrip("\n"))
        elif self._state is _State.TOOL:
            self._close_tool(buf, closed=False)
        else:
            self._text(buf.rstrip("\n"))
        return self._take()

    # -- states ---------------------------------------------------------------------------------

    def _step(self) -> bool:
        """Consume what can be decided now; true when the state changed (step again)."""
        if self._state is _State.TOOL:
            return self._step_tool()
        if self._strip_leading:
            self._buf = self._buf.lstrip("\n")
            if not self._buf:
                return False
            self._strip_leading = False
        if self._state is _State.REASONING:
            return self._step_reasoning()
        return self._step_text()

    def _step_text(self) -> bool:
        if self._think_allowed:
            decided = self._try_open_think()
            if decided is not False:
                return decided is True
        buf = self._buf
        if self._tools_enabled:
            i = buf.find(TOOL_OPEN)
            if i >= 0:
                before = buf[:i].rstrip("\n")
                self._text(before)
                self._held_ws = buf[len(before) : i]
                self._buf = buf[i + len(TOOL_OPEN) :]
                self._state = _State.TOOL
                return True
        tags = (TOOL_OPEN,) if self._tools_enabled else ()
        safe = buf[: len(buf) - partial_tag_length(buf, tags)]
        emit = safe.rstrip("\n")
        self._text(emit)
        self._buf = buf[len(emit) :]
        return False

    def _try_open_think(self) -> bool | None:
        """True: entered reasoning. None: wait for more text. False: no think block here."""
        head = self._buf.lstrip()
        if not head:
            return None
        if head.startswith(THINK_OPEN):
            self._buf = head[len(THINK_OPEN) :]
            self._state = _State.REASONING
            self._think_allowed = False
            self._strip_leading = True
            return True
        if THINK_OPEN.startswith(head):
            return None
        self._think_allowed = False
        return False

    def _step_reasoning(self) -> bool:
        buf = self._buf
        i = buf.find(THINK_CLOSE)
        if i >= 0:
            self._reasoning(buf[:i].rstrip("\n"))
            self._buf = buf[i + len(THINK_CLOSE) :]
            self._state = _State.TEXT
            self._strip_leading = True
            return True
        safe = buf[: len(buf) - partial_tag_length(buf, (THINK_CLOSE,))]
        emit = safe.rstrip("\n")
        self._reasoning(emit)
        self._buf = buf[len(emit) :]
        return False

    def _step_tool(self) -> bool:
        buf = self._buf
        i = buf.find(TOOL_CLOSE)
        if i >= 0:
            self._buf = buf[i + len(TOOL_CLOSE) :]
            self._close_tool(buf[:i], closed=True)
            return True
        head = buf.lstrip()
        if head and head[0] not in "{<":  # cannot be a call: give the tag back as text now
            self._text(self._held_ws + TOOL_OPEN)
            self._held_ws = ""
            self._state = _State.TEXT
            return True
        return False

    def _close_tool(self, body: str, *, closed: bool) -> None:
        self._state = _State.TEXT
        call = parse_tool_call(body, self._schemas)
        if call is None:
            self._text(self._held_ws + TOOL_OPEN + body + (TOOL_CLOSE if closed else ""))
        else:
            self._out.append(ToolCallEvent(index=self._count, call=call))
            self._count += 1
            self._strip_leading = True
        self._held_ws = ""

    # -- output ---------------------------------------------------------------------------------

    def _text(self, text: str) -> None:
        if text:
            self._think_allowed = False
            self._out.append(TextDelta(text))

    def _reasoning(self, text: str) -> None:
        if text:
            self._out.append(ReasoningDelta(text))

    def _take(self) -> list[ParsedEvent]:
        merged: list[ParsedEvent] = []
        for event in self._out:
            last = merged[-1] if merged else None
            if isinstance(event, TextDelta) and isinstance(last, TextDelta):
                merged[-1] = TextDelta(last.text + event.text)
            elif isinstance(event, ReasoningDelta) and isinstance(last, ReasoningDelta):
                merged[-1] = ReasoningDelta(last.text + event.text)
            else:
                merged.append(event)
        self._out = []
        return merged
