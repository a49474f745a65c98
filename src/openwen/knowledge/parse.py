"""Files to text sections: plain text, Markdown, HTML, CSV here; PDF and DOCX in parse_office.

A parsed document is a list of :class:`Section` s, each with its text and where it is (a page
number for PDFs, a heading path such as ``Chapter 2 > Rules`` for headed formats). The chunker
never lets a chunk cross from one section into the next, so every chunk has one source.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from openwen.knowledge.errors import NO_DEADLINE, Deadline, DocumentError, UnsupportedDocumentError
from openwen.knowledge.settings import KnowledgeSettings

KINDS = {
    ".pdf": "pdf", ".docx": "docx", ".md": "markdown", ".markdown": "markdown",
    ".txt": "text", ".text": "text", ".html": "html", ".htm": "html", ".csv": "csv",
    ".tsv": "csv",
}
CSV_ROWS_PER_SECTION = 20


@dataclass(frozen=True)
class Section:
    text: str
    page: int | None = None
    heading: str | None = None


@dataclass(frozen=True)
class ParsedDocument:
    kind: str
    sections: list[Section]
    pages: int | None = None
    title: str | None = None


def kind_of(filename: str) -> str:
    """The document kind a file name says, or UnsupportedDocumentError."""
    kind = KINDS.get(Path(filename).suffix.lower())
    if kind is None:
        supported = ", ".join(sorted(KINDS))
        raise UnsupportedDocumentError(
            f"{filename}: unsupported file type; supported: {supported}", param="file")
    return kind


def parse_file(path: Path, kind: str, limits: KnowledgeSettings, *,
               name: str | None = None, deadline: Deadline = NO_DEADLINE) -> ParsedDocument:
    """Parse ``path`` as ``kind``. Blocking: call it from a worker thread. ``deadline`` is
    checked as it goes (DocumentTimeoutError once it has passed)."""
    label = name or path.name
    if kind in ("pdf", "docx"):
        from openwen.knowledge import parse_office

        parsed = parse_office.parse_pdf(path, label, deadline) if kind == "pdf" else \
            parse_office.parse_docx(path, label, limits, deadline)
    else:
        text = decode_text(path.read_bytes(), label)
        parsed = TEXT_PARSERS[kind](text, deadline)
    sections = [s for s in parsed.sections if s.text.strip()]
    if not sections:
        raise DocumentError(f"{label}: no text found in this {kind} file", param="file")
    return ParsedDocument(parsed.kind, sections, parsed.pages, parsed.title)


def decode_text(data: bytes, label: str) -> str:
    """Bytes of a text file as str: UTF-8 (BOM allowed), UTF-16 with a BOM, else Windows-1252."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16", errors="replace")
    elif b"\x00" in data[:8192]:
        raise DocumentError(f"{label}: this looks like a binary file, not text", param="file")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("cp1252", errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")


# -- plain text -------------------------------------------------------------------------------

TEXT_HEADING = re.compile(
    r"(chapter|book|part|section|article|act|scene|appendix|amendment)\b[\w .:,'-]{0,70}",
    re.IGNORECASE)


def _is_text_heading(line: str, before: str, after: str) -> bool:
    stripped = line.strip()
    if not stripped or len(stripped) > 80 or before.strip() or after.strip():
        return False
    if TEXT_HEADING.fullmatch(stripped):
        return True
    letters = [c for c in stripped if c.isalpha()]
    return len(letters) >= 3 and all(c.isupper() for c in letters)


CHECK_EVERY = 2048  # lines (or rows) between two deadline checks


def parse_text(text: str, deadline: Deadline = NO_DEADLINE) -> ParsedDocument:
    """Plain text; stand-alone lines like ``CHAPTER IV`` or ``ALL CAPS TITLES`` start sections."""
    lines = text.split("\n")
    sections: list[Section] = []
    heading: str | None = None
    current: list[str] = []
    for i, line in enumerate(lines):
        if i % CHECK_EVERY == 0:
            deadline.check()
        before = lines[i - 1] if i else ""
        after = lines[i + 1] if i + 1 < len(lines) else ""
        if _is_text_heading(line, before, after):
            _flush(sections, current, heading)
            heading, current = line.strip(), []
        current.append(line)
    _flush(sections, current, heading)
    return ParsedDocument("text", sections)


def _flush(sections: list[Section], lines: list[str], heading: str | None) -> None:
    text = "\n".join(lines).strip()
    if text:
        sections.append(Section(text, heading=heading))


# -- Markdown ---------------------------------------------------------------------------------

ATX = re.compile(r"(#{1,6})[ \t]+(\S.*)")  # the closing #s are stripped in code (linear)
SETEXT = re.compile(r"(=+|-+)[ \t]*")
FENCE = re.compile(r"[ \t]{0,3}(```|~~~)")


def parse_markdown(text: str, deadline: Deadline = NO_DEADLINE) -> ParsedDocument:
    """Markdown split at headings (ATX ``#`` and setext underlines), outside code fences; each
    section's heading is the path of headings above it."""
    lines = text.split("\n")
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    current: list[str] = []
    fenced = False
    title = None
    i = 0
    while i < len(lines):
        if i % CHECK_EVERY == 0:
            deadline.check()
        line = lines[i]
        if FENCE.match(line):
            fenced = not fenced
        heading = None if fenced else _markdown_heading(lines, i)
        if heading is None:
            current.append(line)
            i += 1
            continue
        level, name, consumed = heading
        _flush(sections, current, _heading_path(path))
        path = [(lv, n) for lv, n in path if lv < level] + [(level, name)]
        title = title or (name if level == 1 else None)
        current = lines[i:i + consumed]
        i += consumed
    _flush(sections, current, _heading_path(path))
    return ParsedDocument("markdown", sections, title=title)


def _markdown_heading(lines: list[str], i: int) -> tuple[int, str, int] | None:
    if match := ATX.fullmatch(lines[i].strip()):
        return len(match.group(1)), _atx_name(match.group(2)), 1
    line = lines[i].strip()
    under = lines[i + 1].strip() if i + 1 < len(lines) else ""
    if line and under and not line.startswith(("-", "*", "+", ">", "|")) \
            and SETEXT.fullmatch(under):
        return (1 if under.startswith("=") else 2), line, 2
    return None


def _atx_name(rest: str) -> str:
    """An ATX heading's text without its optional closing run of ``#``."""
    name = rest.rstrip()
    bare = name.rstrip("#")
    if bare != name and (not bare or bare[-1] in " \t"):
        name = bare.rstrip()
    return name or rest.strip()


def _heading_path(path: list[tuple[int, str]]) -> str | None:
    return " > ".join(name for _, name in path) or None


# -- HTML -------------------------------------------------------------------------------------

BLOCK_TAGS = frozenset({
    "p", "div", "section", "article", "main", "header", "footer", "aside", "nav", "blockquote",
    "pre", "ul", "ol", "dl", "dt", "dd", "table", "form", "figure", "figcaption", "hr",
    "address", "details", "summary",
})
SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "svg", "head", "iframe"})
HEADINGS = {f"h{n}": n for n in range(1, 7)}


class _HTMLText(HTMLParser):
    def __init__(self, deadline: Deadline) -> None:
        super().__init__(convert_charrefs=True)
        self.deadline = deadline
        self.events = 0
        self.sections: list[Section] = []
        self.path: list[tuple[int, str]] = []
        self.parts: list[str] = []
        self.heading_parts: list[str] | None = None
        self.heading_level = 0
        self.skip = 0
        self.title: str | None = None
        self.in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.events += 1
        if self.events % CHECK_EVERY == 0:
            self.deadline.check()
        if tag in SKIP_TAGS:
            self.skip += 1
        elif tag == "title":
            self.in_title = True
        elif tag in HEADINGS and not self.skip:
            self._flush()
            self.heading_parts, self.heading_level = [], HEADINGS[tag]
        elif tag == "br":
            self._add("\n")
        elif tag == "li":
            self._add("\n- ")
        elif tag in ("td", "th"):
            self._add(" | ")
        elif tag == "tr" or tag in BLOCK_TAGS:
            self._add("\n\n" if tag in BLOCK_TAGS else "\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in SKIP_TAGS:
            self.skip = max(0, self.skip - 1)
        elif tag == "title":
            self.in_title = False
        elif tag in HEADINGS and self.heading_parts is not None:
            name = " ".join("".join(self.heading_parts).split())
            level = self.heading_level
            self.heading_parts = None
            if name:
                self.path = [(lv, n) for lv, n in self.path if lv < level] + [(level, name)]
                self.parts.append(name + "\n\n")
        elif tag in BLOCK_TAGS:
            self._add("\n\n")

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title = (self.title or "") + data.strip()
        elif not self.skip:
            self._add(data)

    def _add(self, text: str) -> None:
        target = self.heading_parts if self.heading_parts is not None else self.parts
        target.append(text)

    def _flush(self) -> None:
        raw = "".join(self.parts)
        lines = [" ".join(line.split()) for line in raw.split("\n")]
        text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
        if text:
            self.sections.append(Section(text, heading=_heading_path(self.path)))
        self.parts = []

    def result(self) -> ParsedDocument:
        self._flush()
        return ParsedDocument("html", self.sections, title=self.title or None)


# A "<" whose next angle bracket is another "<" (or none) cannot open a tag. Python's HTMLParser
# rescans such a would-be tag up to the end of the input for every one of them (30 KB of
# "<a <a ..." took 30 s), so they become text (&lt;) first. Each "<" looks only as far as the
# next bracket: linear.
UNCLOSED_TAG = re.compile(r"<(?=[^<>]*(?:<|\Z))")


def parse_html(text: str, deadline: Deadline = NO_DEADLINE) -> ParsedDocument:
    parser = _HTMLText(deadline)
    parser.feed(UNCLOSED_TAG.sub("&lt;", text))  # in one piece: a tag split across two feeds
    parser.close()                               # would be scanned again on each
    return parser.result()


# -- CSV --------------------------------------------------------------------------------------


def parse_csv(text: str, deadline: Deadline = NO_DEADLINE) -> ParsedDocument:
    try:
        return _parse_csv(text, deadline)
    except csv.Error as exc:  # a field past csv's size limit, a NUL, ...
        raise DocumentError(f"not a readable CSV file ({exc})", param="file") from exc


def _parse_csv(text: str, deadline: Deadline) -> ParsedDocument:
    """One line per row (``column: value; ...`` using the header row), sections of
    ``CSV_ROWS_PER_SECTION`` rows titled by their row numbers."""
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
            text[:8192], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel_tab if text[:8192].count("\t") > text[:8192].count(",") else csv.excel
    rows = []
    for n, row in enumerate(csv.reader(io.StringIO(text), dialect)):
        if n % CHECK_EVERY == 0:
            deadline.check()
        if any(c.strip() for c in row):
            rows.append(row)
    if not rows:
        return ParsedDocument("csv", [])
    header, body = rows[0], rows[1:] or rows[:1]
    sections = []
    for start in range(0, len(body), CSV_ROWS_PER_SECTION):
        block = body[start:start + CSV_ROWS_PER_SECTION]
        lines = [_csv_line(header, row) for row in block]
        first = start + 2  # row 1 is the header
        heading = f"rows {first}-{first + len(block) - 1}"
        sections.append(Section("\n".join(lines), heading=heading))
    return ParsedDocument("csv", sections)


def _csv_line(header: list[str], row: list[str]) -> str:
    cells = []
    for i, value in enumerate(row):
        value = value.strip()
        if not value:
            continue
        name = header[i].strip() if i < len(header) and header[i].strip() else f"column {i + 1}"
        cells.append(f"{name}: {value}")
    return "; ".join(cells)


TEXT_PARSERS: dict[str, Callable[[str, Deadline], ParsedDocument]] = {
    "text": parse_text, "markdown": parse_markdown, "html": parse_html, "csv": parse_csv,
}
