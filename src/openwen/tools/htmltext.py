"""HTML to readable plain text (headings, paragraphs, lists, numbered links), stdlib only."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin

_SKIP = {"script", "style", "noscript", "template", "svg", "iframe", "object", "canvas", "head"}
_BLOCK = {"p", "div", "section", "article", "header", "footer", "main", "nav", "aside", "ul",
          "ol", "table", "tr", "pre", "blockquote", "dl", "dt", "dd", "figure", "figcaption",
          "form", "fieldset", "address", "details", "summary", "br", "hr", "body", "html"}
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_VOID = {"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source",
         "track", "wbr"}
MAX_LINKS = 60
_PRE_NEWLINE, _PRE_SPACE = "\x01", "\x02"


class _Extractor(HTMLParser):
    def __init__(self, base_url: str | None):
        super().__init__(convert_charrefs=True)
        self.base_url = base_url
        self.out: list[str] = []
        self.title = ""
        self.links: list[str] = []
        self._skip = 0
        self._pre = 0
        self._in_title = False
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag in _SKIP and tag not in _VOID:
            self._skip += 1
        if self._skip:
            return
        if tag in _HEADINGS:
            self.out.append("\n\n" + "#" * _HEADINGS[tag] + " ")
        elif tag == "li":
            self.out.append("\n- ")
        elif tag in ("td", "th"):
            self.out.append(" | ")
        elif tag in _BLOCK:
            self.out.append("\n")
        if tag == "pre":
            self._pre += 1
        elif tag == "a":
            self._href = dict(attrs).get("href")
        elif tag == "img" and (alt := dict(attrs).get("alt")):
            self.out.append(f" [image: {alt}] ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
            return
        if self._skip:
            return
        if tag in _HEADINGS or tag in _BLOCK:
            self.out.append("\n")
        if tag == "pre":
            self._pre = max(0, self._pre - 1)
        elif tag == "a" and self._href:
            self._add_link(self._href)
            self._href = None

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        if self._skip:
            return
        if self._pre:  # kept verbatim: shielded from the line clean-up below
            self.out.append(data.replace("\n", _PRE_NEWLINE).replace(" ", _PRE_SPACE))
        else:
            self.out.append(re.sub(r"\s+", " ", data))

    def _add_link(self, href: str) -> None:
        url = urljoin(self.base_url or "", href.strip())
        if not url.startswith(("http://", "https://")) or len(self.links) >= MAX_LINKS:
            return
        if url not in self.links:
            self.links.append(url)
        self.out.append(f" [{self.links.index(url) + 1}]")


def html_to_text(html: str, base_url: str | None = None) -> str:
    """Readable text of an HTML page: title, then the body, then its numbered links."""
    parser = _Extractor(base_url)
    parser.feed(html)
    parser.close()
    lines = [line.strip() for line in "".join(parser.out).splitlines()]
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    body = body.replace(_PRE_NEWLINE, "\n").replace(_PRE_SPACE, " ")
    parts = []
    if title := " ".join(parser.title.split()):
        parts.append(f"Title: {title}")
    parts.append(body)
    if parser.links:
        parts.append("Links:\n" + "\n".join(f"[{i}] {u}" for i, u in enumerate(parser.links, 1)))
    return "\n\n".join(p for p in parts if p)
