"""Keep special tokens written inside message content inert.

The chat template's own text (``<|im_start|>user\\n``, ``<|im_end|>``) must become the model's
control tokens, but the same characters inside what a user typed, a fetched page, a document
passage or a tool result must stay plain text: otherwise ``<|im_end|>`` in a document ends the
turn and the text after it speaks as the system. llama.cpp's tokenizer cannot be told which parts
of one string are which, and it matches user-defined added tokens (Qwen's ``<think>``,
``<tool_call>``) even with special-token parsing off. So:

1. before rendering, :meth:`SpecialTexts.escape` rewrites every special token's text inside
   message content, reasoning, tool calls and tool definitions by putting a mark (U+E000, a
   private-use character) inside it (``<|`` MARK ``im_end|>``), so no content-born special token
   survives as one string; a MARK the content itself holds is doubled;
2. the template renders as usual (its own tokens are untouched, and its string tests such as
   ``content.startswith('<tool_response>')`` no longer see a forged tag);
3. :func:`segments` cuts the rendered text at each single MARK (a doubled MARK is a literal one)
   and each piece is tokenised on its own with special tokens parsed. A token can never span a
   cut, so the content's ``<|im_end|>`` becomes the plain-text tokens of ``<|`` and ``im_end|>``.

The cut sits where the token's text changes from punctuation to letters (``<|`` / ``im_end|>``,
``</`` / ``think>``), a pre-tokeniser boundary for GPT-2 style byte-level BPE, so the content
keeps the same ids it would have as plain text in most vocabularies. The same text always renders
and cuts the same way, so the prefix cache keeps hitting turn after turn.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from typing import Any

from openwen.messages import Message, ToolCall

MARK = "\ue000"
_RUNS = re.compile(MARK + "+")


def cut_point(text: str) -> int:
    """Where to cut a special token's text: after its leading punctuation, else after 1 char."""
    for i in range(1, len(text)):
        if text[i - 1].isalnum() != text[i].isalnum():
            return i
    return 1


class SpecialTexts:
    """The texts of a vocabulary's special (control and user-defined) tokens, and escaping."""

    def __init__(self, texts: Iterable[str]):
        found = sorted({t for t in texts if len(t) >= 2 and MARK not in t}, key=len, reverse=True)
        self.texts = tuple(found)
        self._pattern = re.compile("|".join(map(re.escape, found))) if found else None

    def escape(self, text: str) -> str:
        """``text`` with a MARK inside every special token's text (and its own MARKs doubled)."""
        if MARK in text:
            text = text.replace(MARK, MARK + MARK)
        if self._pattern is None:
            return text
        return self._pattern.sub(_cut, text)

    def escape_request_parts(self, messages: Iterable[Message],
                             tools: Iterable[dict[str, Any]]
                             ) -> tuple[tuple[Message, ...], tuple[dict[str, Any], ...]]:
        """Messages and tool definitions with every string they carry escaped."""
        return (tuple(self._message(m) for m in messages),
                tuple(_deep(t, self.escape) for t in tools))

    def _message(self, m: Message) -> Message:
        esc = self.escape
        return dataclasses.replace(
            m,
            content=esc(m.content) if m.content else m.content,
            reasoning=esc(m.reasoning) if m.reasoning else m.reasoning,
            name=esc(m.name) if m.name else m.name,
            tool_calls=tuple(ToolCall(c.id, esc(c.name), esc(c.arguments)) for c in m.tool_calls),
        )


def _cut(match: re.Match[str]) -> str:
    text = match.group()
    k = cut_point(text)
    return text[:k] + MARK + text[k:]


def _deep(value: Any, esc: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return esc(value)
    if isinstance(value, dict):
        return {k: _deep(v, esc) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_deep(v, esc) for v in value)
    return value


def segments(text: str) -> list[str]:
    """The rendered text cut at every single MARK; doubled MARKs become literal ones."""
    if MARK not in text:
        return [text]
    out: list[str] = []
    current: list[str] = []
    pos = 0
    for run in _RUNS.finditer(text):
        current.append(text[pos : run.start()])
        n = run.end() - run.start()
        current.append(MARK * (n // 2))
        if n % 2:
            out.append("".join(current))
            current = []
        pos = run.end()
    current.append(text[pos:])
    out.append("".join(current))
    return [s for s in out if s]


def plain_text(text: str) -> str:
    """The rendered text as the model reads it: marks removed (for display and counting)."""
    return "".join(segments(text))


def tokenize_segments(text: str, tokenize: Callable[[str, bool], list[int]]) -> list[int]:
    """Tokenise each segment with ``tokenize(piece, first)``; ``first`` is true for the first
    (the one a BOS may precede)."""
    tokens: list[int] = []
    for i, piece in enumerate(segments(text)):
        tokens.extend(tokenize(piece, i == 0))
    return tokens
