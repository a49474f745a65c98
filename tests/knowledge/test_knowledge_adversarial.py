"""Adversarial text: every parser and the chunker stay linear on inputs built to make regexes or
HTMLParser backtrack (issue 10, finding 4), a time budget refuses what is still too slow, and an
upload of such a file no longer stalls the server.

Time bounds here are generous "did not hang" bounds (the quadratic versions took tens of
seconds on a fraction of these sizes); bench/rag.py holds the real speed figures.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from openwen.knowledge import KnowledgeBase, KnowledgeSettings, LocalEmbedder
from openwen.knowledge.chunking import _sentences, chunk_sections
from openwen.knowledge.errors import Deadline, DocumentTimeoutError
from openwen.knowledge.parse import TEXT_PARSERS, Section, kind_of, parse_file
from openwen.storage import Storage

N = 200_000
BOUND = 20.0  # seconds for one parse + chunk of ~200-600 KB (linear code needs well under 1 s)

ADVERSARIAL = {
    "dots": "x" + "." * N,  # the audit's case: 40,000 dots took 21 s
    "bangs_and_quotes": "x" + "!\"" * N,
    "terminators_glued": "a." * N,
    "no_whitespace": "a" * N,
    "one_huge_line": "word " * N,
    "spaces": "a" + " " * N + "b",
    "blank_lines_of_tabs": "a\n" + " \t" * N + "\nb",
    "atx_hash_run": "# a" + "#" * N + "b",
    "atx_spaced_hashes": "# a" + " #" * N + "b",
    "setext_run": "a\n" + "=" * N + "x",
    "many_paragraphs": "a\n\n" * N,
    "unclosed_tags": "<a " * N,  # HTMLParser alone: 30 KB of it took 30 s
    "angle_run": "<" * N,
    "tag_with_many_attributes": "<a" + " b='c'" * N + ">",
    "unclosed_comments": "<!--" * N,
    "cjk_without_punctuation": "中" * N,
    "cjk_full_stops": "中。" * N,
    "csv_quotes": '"a",' * N,
}


@pytest.mark.parametrize("kind", sorted(TEXT_PARSERS))
@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_parsing_and_chunking_adversarial_text_is_quick(kind: str, name: str) -> None:
    text = ADVERSARIAL[name]
    began = time.monotonic()
    try:
        parsed = TEXT_PARSERS[kind](text, Deadline(BOUND, name))
    except DocumentTimeoutError:
        pytest.fail(f"{kind} parser ran out of time on {name}")
    except Exception as exc:  # a clear refusal (a CSV field too large) is fine; a crash is not
        assert getattr(exc, "param", None) == "file", repr(exc)
        return
    content, chunks = chunk_sections(parsed.sections, max_chars=900, overlap=150)
    took = time.monotonic() - began
    assert took < BOUND, f"{kind}/{name} took {took:.1f} s"
    for chunk in chunks:
        assert content[chunk.start:chunk.end] == chunk.text
        assert 0 < len(chunk.text) <= 900


def test_sentences_split_where_sentences_end() -> None:
    text = "Pi is 3.14 here. Is that so?! \"Yes.\" Then...no.第一句话。第二句！End"
    pieces = [text[s:e].strip() for s, e in _sentences(text, 0, len(text))]
    assert pieces == ["Pi is 3.14 here.", "Is that so?!", "\"Yes.\"",
                      "Then...no.第一句话。", "第二句！", "End"]
    _, chunks = chunk_sections([Section(text * 4)], max_chars=50, overlap=0)
    assert all(len(c.text) <= 50 for c in chunks)
    assert chunks[0].text == "Pi is 3.14 here. Is that so?! \"Yes.\""


def test_an_exhausted_time_budget_refuses_the_file(tmp_path: Path) -> None:
    path = tmp_path / "long.md"
    path.write_text("# Title\n\n" + "A line of text.\n" * 50_000)
    with pytest.raises(DocumentTimeoutError, match="parse_seconds") as caught:
        parse_file(path, kind_of(path.name), KnowledgeSettings(), deadline=Deadline(0, "long.md"))
    assert caught.value.param == "file" and caught.value.code == "document_too_complex"


def test_add_file_past_the_budget_stores_nothing(sqlite_storage: Storage,
                                                 embedder: LocalEmbedder,
                                                 tmp_path: Path) -> None:
    user = sqlite_storage.users.create("alice", None)
    kb = KnowledgeBase(sqlite_storage.db, embedder, KnowledgeSettings(parse_seconds=0))
    path = tmp_path / "notes.txt"
    path.write_text("Some notes.\n" * 10)
    with pytest.raises(DocumentTimeoutError):
        kb.add_file(user.id, path)
    assert kb.list_documents(user.id) == []
    fine = KnowledgeBase(sqlite_storage.db, embedder, KnowledgeSettings())
    assert fine.add_file(user.id, path).created
