"""Text shared by many documents of a user (headers, footers, disclaimers) and what gets embedded.

A chunk's vector should say what the chunk is about. When every page of a collection opens
with the same paragraph, chunks that carry it look alike to the embedding model and a question
finds whichever page by chance (issue 15: 7 of 12 paraphrased questions found their page).

Each document records the fingerprints of its blocks (lines and paragraphs of 24+ letters,
normalised: lower case, letters and digits only). A block whose fingerprint is in at least
``COMMON_DOCUMENTS`` of the user's documents is boilerplate: it stays in the chunk's text (shown,
cited, full-text searched) but is left out of the text the model embeds, unless nothing else
would be left. What gets embedded is the document title and heading path, then the rest.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable

COMMON_DOCUMENTS = 3  # a block in this many of a user's documents is boilerplate
MIN_BLOCK = 24  # normalised characters; shorter blocks ("Notes", "- yes") are never boilerplate
MAX_FINGERPRINTS = 2000  # per document (a long book gains nothing from more)
NOT_WORD = re.compile(r"[\W_]+")
BLOCK = re.compile(r"[^\n]+")


def _normal(block: str) -> str:
    return NOT_WORD.sub("", block.lower())


def _fingerprint(normal: str) -> str:
    return hashlib.blake2b(normal.encode(), digest_size=8).hexdigest()


def _blocks(text: str) -> Iterable[str]:
    """Lines, and paragraphs of several lines."""
    for paragraph in text.split("\n\n"):
        lines = BLOCK.findall(paragraph)
        yield from lines
        if len(lines) > 1:
            yield paragraph


def fingerprints(texts: Iterable[str]) -> list[str]:
    """The distinct block fingerprints of a document's sections (first ``MAX_FINGERPRINTS``)."""
    seen: dict[str, None] = {}
    for text in texts:
        for block in _blocks(text):
            normal = _normal(block)
            if len(normal) >= MIN_BLOCK:
                seen.setdefault(_fingerprint(normal), None)
                if len(seen) >= MAX_FINGERPRINTS:
                    return list(seen)
    return list(seen)


def common(documents: Iterable[Iterable[str]], at_least: int = COMMON_DOCUMENTS) -> set[str]:
    """Fingerprints found in at least ``at_least`` of ``documents`` (each a fingerprint list)."""
    counts: Counter[str] = Counter()
    for prints in documents:
        counts.update(set(prints))
    return {f for f, n in counts.items() if n >= at_least}


def strip(text: str, boilerplate: set[str]) -> str:
    """``text`` without its boilerplate lines and paragraphs; ``text`` itself when that would
    leave nothing but headings."""
    if not boilerplate:
        return text
    kept = []
    for paragraph in text.split("\n\n"):
        if _is_common(paragraph, boilerplate):
            continue
        lines = [line for line in paragraph.split("\n") if not _is_common(line, boilerplate)]
        if lines:
            kept.append("\n".join(lines))
    rest = "\n\n".join(kept)
    body = [line for line in rest.split("\n") if line.strip() and not line.lstrip().startswith("#")]
    return rest if body else text


def _is_common(block: str, boilerplate: set[str]) -> bool:
    normal = _normal(block)
    return len(normal) >= MIN_BLOCK and _fingerprint(normal) in boilerplate


def context_line(title: str | None, section: str | None) -> str:
    """``Title > Heading > Sub-heading``: the document title unless the path starts with it."""
    parts = [p for p in (section or "").split(" > ") if p]
    if title and (not parts or parts[0].casefold() != title.casefold()):
        parts.insert(0, title)
    return " > ".join(parts)


def embedding_text(text: str, *, title: str | None, section: str | None,
                   boilerplate: set[str]) -> str:
    """What the model reads for a chunk: its context line, then its text less boilerplate."""
    body = strip(text, boilerplate)
    context = context_line(title, section)
    if not context:
        return body
    # heading lines are in the context line already
    lines = [line for line in body.split("\n")
             if line.strip() and not line.lstrip().startswith("#")]
    return "\n".join([context, *lines]).strip()


def document_title(filename: str, meta: dict[str, object] | None) -> str:
    """A document's title: the one it declares, else its file name without the extension."""
    title = (meta or {}).get("title")
    if isinstance(title, str) and title.strip():
        return " ".join(title.split())
    stem = filename.rsplit(".", 1)[0] if "." in filename else filename
    return " ".join(stem.replace("_", " ").replace("-", " ").split()) or filename
