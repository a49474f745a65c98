"""Parsing and chunking each format, and refusing bad files with clear errors."""

from __future__ import annotations

import zipfile
from pathlib import Path

import docx
import pytest
from pdfgen import make_pdf
from pypdf import PdfReader, PdfWriter

from openwen.knowledge.chunking import chunk_sections
from openwen.knowledge.errors import DocumentError, DocumentTooLargeError, UnsupportedDocumentError
from openwen.knowledge.ingest import check_file
from openwen.knowledge.parse import Section, kind_of, parse_file
from openwen.knowledge.settings import KnowledgeSettings

LIMITS = KnowledgeSettings()


def parse(path: Path, limits: KnowledgeSettings = LIMITS):
    return parse_file(path, kind_of(path.name), limits)


def test_markdown_sections_follow_the_heading_path(docs: Path) -> None:
    parsed = parse(docs / "lease.md")
    assert [s.heading for s in parsed.sections] == [
        "Apartment lease", "Apartment lease > Pets", "Apartment lease > Rent",
        "Apartment lease > Heating"]
    assert parsed.title == "Apartment lease"
    assert "Reptiles are not allowed" in parsed.sections[1].text


def test_markdown_headings_inside_code_fences_are_text(tmp_path: Path) -> None:
    path = tmp_path / "code.md"
    path.write_text("# Guide\n\n```\n# not a heading\n```\n\nSetup\n=====\n\nRun it.\n")
    parsed = parse(path)
    assert [s.heading for s in parsed.sections] == ["Guide", "Setup"]
    assert "# not a heading" in parsed.sections[0].text


def test_plain_text_chapters_become_sections(docs: Path) -> None:
    parsed = parse(docs / "voyage.txt")
    assert [s.heading for s in parsed.sections] == ["CHAPTER I", "CHAPTER II"]


def test_html_drops_scripts_and_keeps_headings(docs: Path) -> None:
    parsed = parse(docs / "plants.html")
    text = "\n".join(s.text for s in parsed.sections)
    assert "never indexed" not in text and "p{}" not in text
    assert parsed.title == "Plant care"
    assert parsed.sections[-1].heading == "Plant care > Cactus"
    assert "once a month in winter" in parsed.sections[-1].text


def test_csv_rows_carry_their_column_names(docs: Path) -> None:
    parsed = parse(docs / "birthdays.csv")
    assert parsed.sections[0].heading == "rows 2-3"
    assert "name: Mia; relation: daughter; birthday: March 3" in parsed.sections[0].text


def test_pdf_pages_are_sections(tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(make_pdf(["Quarterly revenue grew by nine percent.", "",
                               "Page three mentions the new warehouse in Leeds."], title="Q3"))
    parsed = parse(path)
    assert parsed.pages == 3
    assert [s.page for s in parsed.sections] == [1, 3]  # the blank page has no section
    assert "warehouse in Leeds" in parsed.sections[1].text
    assert parsed.title == "Q3"


def test_docx_headings_paragraphs_and_tables(tmp_path: Path) -> None:
    document = docx.Document()
    document.add_heading("Handbook", level=1)
    document.add_paragraph("Welcome to the team.")
    document.add_heading("Holidays", level=2)
    document.add_paragraph("Everyone gets twenty-five days of paid leave.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Office", "Hours"
    table.cell(1, 0).text, table.cell(1, 1).text = "Leeds", "9-17"
    path = tmp_path / "handbook.docx"
    document.save(str(path))
    parsed = parse(path)
    assert [s.heading for s in parsed.sections] == ["Handbook", "Handbook > Holidays"]
    assert "twenty-five days" in parsed.sections[1].text
    assert "Leeds | 9-17" in parsed.sections[1].text


def test_chunks_overlap_stay_in_their_section_and_point_into_the_text() -> None:
    body = " ".join(f"Sentence {i} talks about topic {i % 7}." for i in range(80))
    sections = [Section("Intro line.", heading="A"), Section(body, page=2, heading="B")]
    content, chunks = chunk_sections(sections, max_chars=300, overlap=80)
    assert chunks[0].text == "Intro line." and chunks[0].section == "A"
    rest = chunks[1:]
    assert len(rest) > 5
    for chunk in chunks:
        assert content[chunk.start:chunk.end] == chunk.text
        assert len(chunk.text) <= 300
    for before, after in zip(rest, rest[1:], strict=False):
        assert after.page == 2 and after.section == "B"
        assert 0 < before.end - after.start <= 80  # they overlap, by at most 80 characters
    covered = set()
    for chunk in rest:
        covered.update(range(chunk.start, chunk.end))
    assert covered >= set(range(rest[0].start, rest[-1].end))  # nothing is skipped


def test_a_word_longer_than_a_chunk_is_cut() -> None:
    content, chunks = chunk_sections([Section("x" * 1000)], max_chars=300, overlap=50)
    assert "".join(c.text for c in chunks) == content
    assert max(len(c.text) for c in chunks) <= 300


# -- bad input ----------------------------------------------------------------------------------


def test_unsupported_type() -> None:
    with pytest.raises(UnsupportedDocumentError, match="unsupported file type"):
        kind_of("photo.jpeg")


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    with pytest.raises(DocumentError, match="empty"):
        check_file(path, path.name, LIMITS)


def test_a_200_mb_file_is_refused_by_its_size(tmp_path: Path) -> None:
    path = tmp_path / "huge.txt"
    with path.open("wb") as handle:  # sparse: nothing is written, nothing will be read
        handle.truncate(200 * 1024 * 1024)
    with pytest.raises(DocumentTooLargeError, match="200.0 MB, more than the limit of 50.0 MB"):
        check_file(path, path.name, LIMITS)


def test_binary_file_named_txt(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_bytes(b"\x00\x01\x02binary" * 10)
    with pytest.raises(DocumentError, match="binary"):
        parse(path)


def test_password_protected_pdf(tmp_path: Path) -> None:
    plain = tmp_path / "plain.pdf"
    plain.write_bytes(make_pdf(["Secret plans for the garden."]))
    writer = PdfWriter(clone_from=PdfReader(str(plain)))
    writer.encrypt(user_password="hunter2", owner_password="owner", algorithm="RC4-128")
    locked = tmp_path / "locked.pdf"
    writer.write(str(locked))
    with pytest.raises(DocumentError, match="encrypted with a password"):
        parse(locked)


def test_owner_only_encryption_still_reads(tmp_path: Path) -> None:
    plain = tmp_path / "plain.pdf"
    plain.write_bytes(make_pdf(["Printing is restricted but reading is fine."]))
    writer = PdfWriter(clone_from=PdfReader(str(plain)))
    writer.encrypt(user_password="", owner_password="owner", algorithm="RC4-128")
    path = tmp_path / "restricted.pdf"
    writer.write(str(path))
    assert "reading is fine" in parse(path).sections[0].text


@pytest.mark.parametrize("content", [
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ntrailer << /Root 1 0 R >>",
    b"%PDF-1.7\n" + bytes(range(256)) * 20,
])
def test_corrupt_pdf(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.pdf"
    path.write_bytes(content)
    with pytest.raises(DocumentError, match="broken.pdf: "):
        parse(path)


def test_not_a_pdf_at_all(tmp_path: Path) -> None:
    path = tmp_path / "fake.pdf"
    path.write_text("just some text pretending")
    with pytest.raises(DocumentError, match="not a PDF"):
        parse(path)


def test_pdf_without_text(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(make_pdf(["", ""]))
    with pytest.raises(DocumentError, match="OCR"):
        parse(path)


def test_zip_bomb_disguised_as_docx(tmp_path: Path) -> None:
    path = tmp_path / "bomb.docx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"\0" * (20 * 1024 * 1024))
    assert path.stat().st_size < 100_000
    with pytest.raises(DocumentError, match="zip bomb"):
        parse(path)


def test_docx_over_the_uncompressed_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.docx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("word/document.xml", b"a" * 5000)
    with pytest.raises(DocumentError, match="inflate to 5000 bytes"):
        parse(path, KnowledgeSettings(zip_max_bytes=4000))


def test_docx_that_is_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "fake.docx"
    path.write_text("not a zip")
    with pytest.raises(DocumentError, match="not a valid DOCX"):
        parse(path)


def test_zip_that_is_not_a_word_document(tmp_path: Path) -> None:
    path = tmp_path / "other.docx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(DocumentError, match="not a Word document"):
        parse(path)
