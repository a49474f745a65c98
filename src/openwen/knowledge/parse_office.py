"""PDF (pypdf) and DOCX (python-docx) parsing, with the checks bad files need.

- PDF: the ``%PDF-`` signature; encrypted files are opened only when they have an empty user
  password (owner-password "protection"), otherwise rejected; any pypdf failure is a clear
  DocumentError; a PDF with no extractable text (scanned images) is rejected as such.
- DOCX: before python-docx sees it, the zip's directory is checked: entry count, total
  uncompressed size and compression ratio (a zip bomb renamed ``.docx`` is refused without being
  inflated). The sizes in the directory bound what is read: Python's zipfile never inflates an
  entry past its declared size.
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path
from typing import Any

from openwen.knowledge.errors import NO_DEADLINE, Deadline, DocumentError
from openwen.knowledge.parse import ParsedDocument, Section
from openwen.knowledge.settings import KnowledgeSettings

log = logging.getLogger(__name__)

ZIP_RATIO_FLOOR = 1024 * 1024  # small files may compress well; only judge ratios above 1 MB


def _error(label: str, what: str) -> DocumentError:
    return DocumentError(f"{label}: {what}", param="file")


# -- PDF --------------------------------------------------------------------------------------


def parse_pdf(path: Path, label: str, deadline: Deadline = NO_DEADLINE) -> ParsedDocument:
    with path.open("rb") as handle:
        if b"%PDF-" not in handle.read(1024):
            raise _error(label, "not a PDF file (no %PDF- signature)")
    from pypdf import PdfReader
    from pypdf.errors import DependencyError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # corrupt files log a lot of warnings
    try:
        reader = PdfReader(str(path), strict=False)
        _unlock(reader, label)
        pages = []
        for page in reader.pages:
            deadline.check()
            pages.append(_page_text(page))
    except DocumentError:
        raise
    except DependencyError as exc:
        raise _error(label, f"this PDF needs an optional decoder: {exc}") from exc
    except Exception as exc:  # pypdf raises many kinds of errors on damaged files
        raise _error(label, f"the PDF is damaged or unreadable ({type(exc).__name__}: {exc})"
                     ) from exc
    if not any(text.strip() for text in pages):
        raise _error(label, "no text found in the PDF (scanned pages would need OCR, "
                            "which openwen does not do)")
    sections = [Section(text.strip(), page=n) for n, text in enumerate(pages, 1) if text.strip()]
    title: object = None
    try:
        title = reader.metadata.get("/Title") if reader.metadata else None
    except Exception:  # metadata of a damaged file: not worth failing for
        title = None
    return ParsedDocument("pdf", sections, pages=len(pages), title=str(title) if title else None)


def _unlock(reader: Any, label: str) -> None:
    if not reader.is_encrypted:
        return
    try:
        unlocked = reader.decrypt("")
    except Exception as exc:
        raise _error(label, f"the PDF is encrypted and cannot be opened ({exc})") from exc
    if not unlocked:
        raise _error(label, "the PDF is encrypted with a password; save an unencrypted copy "
                            "and add that")


def _page_text(page: Any) -> str:
    text = page.extract_text() or ""
    return text.replace("\x00", "")


# -- DOCX -------------------------------------------------------------------------------------


def check_zip(path: Path, label: str, limits: KnowledgeSettings) -> None:
    """Refuse a zip whose directory promises too much: too many entries, too large once
    inflated, or compressed suspiciously well."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            names = {info.filename for info in infos}
    except (zipfile.BadZipFile, OSError) as exc:
        raise _error(label, f"not a valid DOCX file (a DOCX is a zip archive: {exc})") from exc
    if len(infos) > limits.zip_max_entries:
        raise _error(label, f"the DOCX holds {len(infos)} files, more than the limit of "
                            f"{limits.zip_max_entries}")
    total = sum(info.file_size for info in infos)
    packed = sum(info.compress_size for info in infos)
    if total > limits.zip_max_bytes:
        raise _error(label, f"the DOCX would inflate to {total} bytes, more than the limit of "
                            f"{limits.zip_max_bytes} (a zip bomb?)")
    if total > ZIP_RATIO_FLOOR and total > limits.zip_max_ratio * max(packed, 1):
        raise _error(label, f"the DOCX is compressed {total // max(packed, 1)}:1, more than "
                            f"{limits.zip_max_ratio}:1 (a zip bomb?)")
    if "word/document.xml" not in names:
        raise _error(label, "not a Word document (no word/document.xml inside)")


def parse_docx(path: Path, label: str, limits: KnowledgeSettings,
               deadline: Deadline = NO_DEADLINE) -> ParsedDocument:
    check_zip(path, label, limits)
    try:
        import docx

        document = docx.Document(str(path))
        sections = _docx_sections(document, deadline)
        title = document.core_properties.title or None
    except DocumentError:
        raise
    except Exception as exc:  # python-docx / lxml failures on damaged files
        raise _error(label, f"the DOCX is damaged or unreadable ({type(exc).__name__}: {exc})"
                     ) from exc
    return ParsedDocument("docx", sections, title=title)


def _docx_sections(document: Any, deadline: Deadline) -> list[Section]:
    from docx.table import Table

    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    lines: list[str] = []

    def flush() -> None:
        text = "\n\n".join(line for line in lines if line.strip()).strip()
        if text:
            sections.append(Section(text, heading=" > ".join(n for _, n in path) or None))
        lines.clear()

    for block in document.iter_inner_content():
        deadline.check()
        if isinstance(block, Table):
            lines.append(_docx_table(block))
            continue
        level = _heading_level(block)
        text = block.text.strip()
        if level and text:
            flush()
            path = [(lv, n) for lv, n in path if lv < level] + [(level, text)]
        lines.append(text)
    flush()
    return sections


def _heading_level(paragraph: Any) -> int:
    try:
        name = (paragraph.style.name or "") if paragraph.style is not None else ""
    except (KeyError, ValueError):
        return 0
    if name == "Title":
        return 1
    if name.startswith("Heading"):
        digits = name.removeprefix("Heading").strip()
        return int(digits) if digits.isdigit() else 1
    return 0


def _docx_table(table: Any) -> str:
    rows = []
    for row in table.rows:
        cells = [" ".join(cell.text.split()) for cell in row.cells]
        rows.append(" | ".join(cells))
    return "\n".join(rows)
