"""Sections to overlapping chunks, each with its source and exact offsets in the document text.

The document's text is its sections joined by blank lines. Each section is cut into units
(paragraphs; lines, sentences or words for units still too long), and units are packed greedily
into chunks of at most ``max_chars``. The next chunk starts with the last units of the previous
one, up to ``overlap`` characters, so a fact cut at a boundary is whole in one of them. A chunk
never spans two sections: its page and heading are its citation.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from openwen.knowledge.errors import NO_DEADLINE, Deadline
from openwen.knowledge.parse import Section

INDEX_VERSION = 2  # bump when chunking or what gets embedded changes (documents then need reindex)
SEPARATOR = "\n\n"
PARAGRAPH = re.compile(r"\S[^\n]*(?:\n[ \t]*\S[^\n]*)*")
LINE = re.compile(r"\S[^\n]*")
# a run of sentence terminators and closing quotes; it ends a sentence when whitespace or the
# end follows (or at once for CJK full stops). Matched without any lookahead, so each character
# is looked at a bounded number of times: no run of dots or quotes can make it quadratic.
TERMINATORS = re.compile(r"[.!?\u3002\uff01\uff1f\uff1b]+[\"')\]\u201d\u2019\u300d\u300f\uff09]*")
CJK_STOPS = frozenset("\u3002\uff01\uff1f\uff1b")


@dataclass(frozen=True)
class Chunk:
    text: str
    page: int | None
    section: str | None
    start: int  # offsets into the document text
    end: int


def chunk_sections(sections: list[Section], *, max_chars: int = 900, overlap: int = 150,
                   deadline: Deadline = NO_DEADLINE) -> tuple[str, list[Chunk]]:
    """The document text and its chunks (``deadline`` checked as it goes)."""
    if max_chars < 50 or not 0 <= overlap < max_chars:
        raise ValueError("need max_chars >= 50 and 0 <= overlap < max_chars")
    parts: list[str] = []
    chunks: list[Chunk] = []
    offset = 0
    kept = [s for s in sections if s.text.strip()]
    for section in kept:
        deadline.check()
        text = section.text.strip()
        if parts:
            offset += len(SEPARATOR)
        # a heading with no text of its own ("# Title" straight before "## Part") is no passage
        units = [] if len(kept) > 1 and _heading_only(section, text) else \
            list(_units(text, max_chars))
        for start, end in _pack(units, max_chars, overlap):
            if len(chunks) % 256 == 0:
                deadline.check()
            chunks.append(Chunk(text[start:end], section.page, section.heading,
                                offset + start, offset + end))
        parts.append(text)
        offset += len(text)
    return SEPARATOR.join(parts), chunks


def _heading_only(section: Section, text: str) -> bool:
    if not section.heading or len(text) > 120 or "\n" in text.strip("\n -=#"):
        return False
    # the heading line alone (a paragraph that merely starts with the heading's word is text)
    return text.strip("\n -=#\t") == section.heading.rsplit(" > ", 1)[-1].strip(" #")


Splitter = Callable[[str, int, int], Iterator[tuple[int, int]]]


def _units(text: str, max_chars: int) -> Iterator[tuple[int, int]]:
    """Spans of ``text`` no longer than ``max_chars``: paragraphs, else finer pieces."""
    yield from _split(text, 0, len(text), max_chars, (_paragraphs, _lines, _sentences))


def _matches(pattern: re.Pattern[str]) -> Splitter:
    def spans(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
        for match in pattern.finditer(text, start, end):
            yield match.start(), match.end()
    return spans


_paragraphs = _matches(PARAGRAPH)
_lines = _matches(LINE)


def _sentences(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """Sentences: up to a terminator run followed by whitespace (or a CJK full stop), in one
    linear pass."""
    begin = start
    for match in TERMINATORS.finditer(text, start, end):
        stop = match.end()
        if stop >= end or text[stop].isspace() or text[match.start()] in CJK_STOPS:
            yield begin, stop
            begin = stop
    if begin < end:
        yield begin, end


def _split(text: str, start: int, end: int, max_chars: int,
           splitters: tuple[Splitter, ...]) -> Iterator[tuple[int, int]]:
    if not splitters:
        yield from _hard_split(text, start, end, max_chars)
        return
    for s, e in splitters[0](text, start, end):
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e <= s:
            continue
        if e - s <= max_chars:
            yield s, e
        else:
            yield from _split(text, s, e, max_chars, splitters[1:])


def _hard_split(text: str, start: int, end: int, max_chars: int) -> Iterator[tuple[int, int]]:
    """Cut at the last whitespace before ``max_chars`` (mid-word only when there is none)."""
    while start < end:
        while start < end and text[start].isspace():
            start += 1
        if start >= end:
            return
        stop = min(end, start + max_chars)
        if stop < end:
            space = text.rfind(" ", start + max_chars // 2, stop)
            if space > start:
                stop = space
        yield start, stop
        start = stop


def _pack(units: list[tuple[int, int]], max_chars: int,
          overlap: int) -> Iterator[tuple[int, int]]:
    i = 0
    while i < len(units):
        j = i + 1
        while j < len(units) and units[j][1] - units[i][0] <= max_chars:
            j += 1
        yield units[i][0], units[j - 1][1]
        if j >= len(units):
            return
        k = j
        while k - 1 > i and units[j - 1][1] - units[k - 1][0] <= overlap:
            k -= 1
        # the overlapping units plus the next one must still fit in one chunk
        while k < j and units[j][1] - units[k][0] > max_chars:
            k += 1
        i = k
