"""Arithmetic the model writes, finished by the calculator: when an answer's text reaches
``<numbers and operators> =`` (or ``equals``, ``is``; operators as symbols or the words plus,
minus, times, multiplied by, divided by), the calculator writes the result and the answer ends
there.

A 135M model lays a sum out well ("12 * 12 = ") and then guesses the result ("120"). This is the
calculator annotation of GSM8K's training data (Cobbe et al., 2021), applied while the answer
streams: the model decides to write an equation (nothing here looks at the question); only what
the calculator can compute exactly is filled in, and everything the model wrote before it is
kept as it was. A model profile switches it on (``arithmetic``: the bundled SmolLM2's does;
Qwen's does not need it).

The answer ends at the result, because the model's own continuation would follow its own guess
(the engine cannot resume a half-written answer with different text); the answer's usage then
counts the pieces of text received (the engine's own count ends with the stream it was closed
on) and its prompt tokens as unknown (0).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from openwen.messages import Done, TextDelta, Usage
from openwen.tools.base import ToolError
from openwen.tools.builtin.calculator import evaluate, format_number

E = TypeVar("E")
Calculated = Callable[[str, str], None]

_NUMBER = r"\(?\s*-?\d+(?:[.,]\d+)*\s*\)?"
_OPERATOR = r"(?:\*\*|[-+*/×÷x^]|\b(?:plus|minus|times|multiplied by|divided by)\b)"
_EQUALS = r"(?:=|\b(?:equals|is)\b)"
EQUATION = re.compile(
    rf"(?<![\w.,/=])({_NUMBER}(?:\s*{_OPERATOR}\s*{_NUMBER})+)\s*{_EQUALS}\s*$",
    re.IGNORECASE)
EQUALS = re.compile(_EQUALS, re.IGNORECASE)
WORDS = {"plus": "+", "minus": "-", "times": "*", "multiplied by": "*", "divided by": "/"}
MAX_TAIL = 200  # an equation is looked for in this much of the newest text


def complete(text: str) -> str | None:
    """The result of the equation ``text`` ends with (``"12 * 12 ="``: ``"144"``), or None
    when it does not end with one the calculator can compute."""
    match = EQUATION.search(text[-MAX_TAIL:])
    if match is None:
        return None
    expression = match.group(1)
    expression = re.sub(r"(?<=\d),(?=\d{3}\b)", "", expression)  # 1,000 -> 1000
    expression = re.sub(r"(?<=[\d)\s])[x×](?=[\s\d(])", "*", expression, flags=re.IGNORECASE)
    expression = expression.replace("^", "**")
    expression = re.sub("|".join(WORDS), lambda m: WORDS[m.group(0).lower()], expression,
                        flags=re.IGNORECASE)
    try:
        value = evaluate(expression)
    except ToolError:
        return None
    return format_number(value)


async def finish_arithmetic(events: AsyncIterator[E], on_calculated: Calculated | None = None
                            ) -> AsyncIterator[E | TextDelta | Done]:
    """``events`` passed through until the answer's text ends with an equation the calculator
    computes; then the result, a :class:`Done` (``stop``) and the end (the model's stream is
    closed, stopping generation). ``on_calculated(equation, result)`` is told what the
    calculator wrote (the web app keeps it in the answer's metadata)."""
    text = ""
    pieces = 0
    async with contextlib.aclosing(events) as stream:  # type: ignore[type-var]
        async for event in stream:
            if not isinstance(event, TextDelta) or not event.text:
                yield event
                continue
            pieces += 1
            found = _equation_in(text, event.text)
            if found is None:
                text += event.text
                yield event
                continue
            head, result = found
            if on_calculated is not None:
                on_calculated((text + head)[-MAX_TAIL:].strip(), result)
            if head:
                yield TextDelta(head)
            yield TextDelta(f" {result}" if not head.endswith(" ") else result)
            yield Done("stop", Usage(completion_tokens=pieces))
            return


def _equation_in(before: str, piece: str) -> tuple[str, str] | None:
    """Where ``piece`` completes an equation: the part of ``piece`` up to its ``=`` (or
    ``equals``, ``is``) and the result."""
    tail = before[-MAX_TAIL:]
    for match in EQUALS.finditer(tail + piece):
        if match.end() <= len(tail):
            continue
        head = piece[: match.end() - len(tail)]
        result = complete(tail + head)
        if result is not None:
            return head, result
    return None
