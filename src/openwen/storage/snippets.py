"""Search snippets: a short plain-text window around the first match, with highlight spans.

Built in Python rather than by the database so SQLite and PostgreSQL give the same snippets and
CJK substring matches are highlighted too.
"""

from __future__ import annotations

import re

WIDTH = 160
LEAD = 50
ELLIPSIS = "…"


def term_pattern(words: tuple[str, ...], substrings: tuple[str, ...]) -> re.Pattern[str] | None:
    """Words match at a word start and run to the word's end; substrings match anywhere."""
    alternatives = [rf"(?<![^\W_]){re.escape(w)}[^\W_]*" for w in words]
    alternatives += [re.escape(t) for t in substrings]
    if not alternatives:
        return None
    return re.compile("|".join(alternatives), re.IGNORECASE)


def make_snippet(
    text: str, words: tuple[str, ...], substrings: tuple[str, ...], width: int = WIDTH
) -> tuple[str, tuple[tuple[int, int], ...]]:
    """``(snippet, spans)``: about ``width`` characters of ``text`` on one line around the first
    match, with ``…`` where it was cut, and the ``(start, end)`` of each match in the snippet."""
    pattern = term_pattern(words, substrings)
    first = pattern.search(text) if pattern else None
    start = 0
    if first and first.start() > LEAD:
        start = first.start() - LEAD
        space = text.find(" ", start, first.start())
        if space != -1 and space - start < LEAD // 2:
            start = space + 1
    end = min(len(text), start + width)
    window = re.sub(r"\s", " ", text[start:end])
    prefix = ELLIPSIS if start > 0 else ""
    suffix = ELLIPSIS if end < len(text) else ""
    spans: list[tuple[int, int]] = []
    if pattern:
        offset = len(prefix)
        spans = [(m.start() + offset, m.end() + offset) for m in pattern.finditer(window)]
    return prefix + window + suffix, tuple(spans)
