"""Adding, deduplicating, searching and removing documents; collections and isolation.
Runs on SQLite and (with OPENWEN_TEST_POSTGRES_URL) PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select, text

from openwen.errors import NotFoundError
from openwen.knowledge import KnowledgeBase, KnowledgeSettings, Scope
from openwen.knowledge.errors import DocumentError
from openwen.storage import Storage, UserRecord
from openwen.storage.knowledge_models import KnowledgeChunk, KnowledgeDocument

HOME = Scope(collection="home")


def count(storage: Storage, model: type) -> int:
    with storage.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(model)))


def test_add_search_and_cite(kb: KnowledgeBase, alice: UserRecord, docs: Path) -> None:
    result = kb.add_file(alice.id, docs / "lease.md", HOME)
    assert result.created and result.document.collections == ("home",)
    assert result.document.kind == "markdown" and result.document.chunks == 3
    kb.add_file(alice.id, docs / "voyage.txt")
    hits = kb.search(alice.id, "when do I have to pay the rent", HOME, limit=2)
    assert hits[0].section == "Apartment lease > Rent"
    assert hits[0].filename == "lease.md"
    assert set(hits[0].ranks) == {"fulltext", "vector"}
    _, content = kb.documents.content(alice.id, hits[0].document_id)
    assert content[hits[0].char_start:hits[0].char_end] == hits[0].text


def test_paraphrased_question_is_found_by_vectors_only(kb: KnowledgeBase, alice: UserRecord,
                                                       docs: Path) -> None:
    for name in ("lease.md", "voyage.txt", "plants.html"):
        kb.add_file(alice.id, docs / name)
    query = "could a furry companion live with me?"  # no word in common with the Pets section
    assert not any(p.section == "Apartment lease > Pets"
                   for p in kb.search(alice.id, query, mode="fulltext"))
    vector = kb.search(alice.id, query, mode="vector", limit=1)
    assert vector[0].section == "Apartment lease > Pets"
    hybrid = kb.search(alice.id, query, limit=3)
    assert "Apartment lease > Pets" in [p.section for p in hybrid]


def test_each_format_is_searchable(kb: KnowledgeBase, alice: UserRecord, docs: Path) -> None:
    for path in sorted(docs.iterdir()):
        kb.add_file(alice.id, path)
    assert kb.search(alice.id, "Mia birthday", limit=1)[0].filename == "birthdays.csv"
    assert kb.search(alice.id, "cactus watering", limit=1)[0].filename == "plants.html"
    assert kb.search(alice.id, "storm reefed sails", limit=1)[0].section == "CHAPTER II"


def test_unchanged_file_is_not_indexed_again(kb: KnowledgeBase, alice: UserRecord, docs: Path,
                                             storage: Storage) -> None:
    first = kb.add_file(alice.id, docs / "lease.md")
    chunks = count(storage, KnowledgeChunk)
    again = kb.add_file(alice.id, docs / "lease.md", HOME)
    assert not again.created and again.document.id == first.document.id
    assert again.document.collections == ("home",)  # but it joins the collection asked for
    assert count(storage, KnowledgeChunk) == chunks


def test_changed_file_replaces_its_old_version(kb: KnowledgeBase, alice: UserRecord,
                                               docs: Path, storage: Storage) -> None:
    path = docs / "lease.md"
    first = kb.add_file(alice.id, path, HOME)
    path.write_text("# Apartment lease\n\n## Pets\n\nNo pets of any kind.\n")
    second = kb.add_file(alice.id, path)
    assert second.created and second.replaced == first.document.id
    assert second.document.collections == ("home",)
    assert [d.id for d in kb.list_documents(alice.id)] == [second.document.id]
    assert kb.search(alice.id, "pets", HOME, limit=1)[0].text.endswith("No pets of any kind.")


def test_remove_document_removes_passages_everywhere(kb: KnowledgeBase, alice: UserRecord,
                                                     docs: Path, storage: Storage) -> None:
    doc = kb.add_file(alice.id, docs / "lease.md", HOME).document
    assert kb.search(alice.id, "boiler", limit=1)  # also warms the vector cache
    kb.remove_document(alice.id, doc.id)
    assert count(storage, KnowledgeChunk) == 0
    assert kb.search(alice.id, "boiler") == []
    assert kb.search(alice.id, "boiler", mode="vector") == []
    assert kb.documents.collections(alice.id)[0].documents == 0
    if storage.db.is_sqlite:  # the full-text index followed the cascade
        with storage.db.read() as s:
            hits = s.execute(text("SELECT count(*) FROM knowledge_chunks_fts "
                                  "WHERE knowledge_chunks_fts MATCH 'boiler'")).scalar()
        assert hits == 0


def test_collections_and_conversations_scope_search(kb: KnowledgeBase, alice: UserRecord,
                                                    docs: Path, storage: Storage) -> None:
    lease = kb.add_file(alice.id, docs / "lease.md", HOME).document
    plants = kb.add_file(alice.id, docs / "plants.html", Scope(collection="garden")).document
    assert [d.filename for d in kb.list_documents(alice.id, HOME)] == ["lease.md"]
    assert {p.document_id for p in kb.search(alice.id, "water", HOME, limit=10)} <= {lease.id}
    chat = storage.conversations.create(alice.id, "plants")
    in_chat = Scope(conversation_id=chat.id)
    assert kb.search(alice.id, "cactus", in_chat) == []  # nothing attached yet
    assert kb.documents.attach(alice.id, plants.id, in_chat)
    assert not kb.documents.attach(alice.id, plants.id, in_chat)
    assert kb.search(alice.id, "cactus", in_chat, limit=1)[0].document_id == plants.id
    assert kb.documents.get(alice.id, plants.id).conversations == (chat.id,)
    assert [c.name for c in kb.documents.collections(alice.id)] == ["garden", "home"]
    kb.documents.delete_collection(alice.id, "garden")
    assert kb.documents.get(alice.id, plants.id).collections == ()
    with pytest.raises(NotFoundError, match="collection 'garden' not found"):
        kb.search(alice.id, "cactus", Scope(collection="garden"))


def test_users_are_isolated(kb: KnowledgeBase, alice: UserRecord, bob: UserRecord,
                            docs: Path, storage: Storage) -> None:
    doc = kb.add_file(alice.id, docs / "lease.md", HOME).document
    bobs = kb.add_file(bob.id, docs / "lease.md").document  # the same file: bob's own copy
    assert bobs.id != doc.id
    kb.remove_document(bob.id, bobs.id)
    assert kb.search(bob.id, "rent") == [] and kb.search(bob.id, "rent", mode="vector") == []
    for call in (lambda: kb.documents.get(bob.id, doc.id),
                 lambda: kb.remove_document(bob.id, doc.id),
                 lambda: kb.documents.attach(bob.id, doc.id, Scope(collection="mine"))):
        with pytest.raises(NotFoundError, match=f"document '{doc.id}' not found"):
            call()
    with pytest.raises(NotFoundError, match="collection 'home' not found"):
        kb.list_documents(bob.id, HOME)
    chunk_id = kb.search(alice.id, "rent", limit=1)[0].chunk_id
    with pytest.raises(NotFoundError):
        kb.documents.passage(bob.id, chunk_id)
    alices_chat = storage.conversations.create(alice.id, "mine")
    with pytest.raises(NotFoundError, match="conversation"):
        kb.add_file(bob.id, docs / "voyage.txt", Scope(conversation_id=alices_chat.id))
    assert kb.documents.get(alice.id, doc.id).filename == "lease.md"


class FailingEmbedder:
    """Embeds the first batch, then fails: the document must not be half-stored."""

    def __init__(self, real):
        self.real, self.name, self.calls = real, real.name, 0

    def embed(self, texts):
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError("embedding crashed")
        return self.real.embed(texts)


def test_a_failure_mid_ingest_leaves_nothing(storage: Storage, alice: UserRecord, embedder,
                                             tmp_path: Path) -> None:
    kb = KnowledgeBase(storage.db, FailingEmbedder(embedder),
                       KnowledgeSettings(chunk_chars=100, chunk_overlap=10, embed_batch=2))
    path = tmp_path / "long.md"
    path.write_text("\n\n".join(f"Paragraph {i} about gardening tools." for i in range(20)))
    with pytest.raises(RuntimeError, match="embedding crashed"):
        kb.add_file(alice.id, path, HOME)
    assert count(storage, KnowledgeDocument) == 0 and count(storage, KnowledgeChunk) == 0
    assert kb.documents.collections(alice.id) == []


def test_bad_files_store_nothing(kb: KnowledgeBase, alice: UserRecord, tmp_path: Path,
                                storage: Storage) -> None:
    (tmp_path / "empty.md").write_bytes(b"")
    (tmp_path / "blank.md").write_text("\n\n   \n")
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4\ngarbage")
    for name in ("empty.md", "blank.md", "broken.pdf"):
        with pytest.raises(DocumentError, match=name):
            kb.add_file(alice.id, tmp_path / name, HOME)
    assert count(storage, KnowledgeDocument) == 0
    assert kb.documents.collections(alice.id) == []


def test_vector_cache_follows_changes(kb: KnowledgeBase, alice: UserRecord, docs: Path) -> None:
    kb.add_file(alice.id, docs / "lease.md")
    assert {p.filename for p in kb.search(alice.id, "sailing ship", mode="vector")} == \
        {"lease.md"}
    kb.add_file(alice.id, docs / "voyage.txt")  # bumps the version: the matrix reloads
    assert kb.search(alice.id, "sailing ship", mode="vector", limit=1)[0].filename == \
        "voyage.txt"


def test_whole_document_mode_for_short_scopes(kb: KnowledgeBase, alice: UserRecord,
                                              docs: Path) -> None:
    kb.add_file(alice.id, docs / "lease.md", HOME)
    ctx = kb.context(alice.id, "what about the boiler?", collection="home")
    assert ctx.mode == "whole" and len(ctx.citations) == 1
    assert ctx.citations[0].chunk_id is None and "Reptiles" in ctx.citations[0].text
    assert "[1] lease.md, whole document" in ctx.text
    chunks = kb.context(alice.id, "what about the boiler?", collection="home", mode="chunks")
    assert chunks.mode == "chunks" and chunks.citations[0].section == "Apartment lease > Heating"
    small = KnowledgeBase(kb.db, kb.embedder, KnowledgeSettings(whole_document_chars=100))
    assert small.context(alice.id, "boiler", collection="home").mode == "chunks"


def test_matrix_top_k_with_masks() -> None:
    from openwen.knowledge.embedder import as_matrix, to_blob
    from openwen.knowledge.vectors import Matrix

    vectors = as_matrix(np.eye(4, dtype=np.float32))
    rows = [(10 + i, "a" if i < 2 else "b", to_blob(v)) for i, v in enumerate(vectors)]
    rows.append((99, "old", b"\0" * 8))  # another model's width: left out
    matrix = Matrix.build(rows)
    assert len(matrix) == 4
    assert matrix.top(vectors[3], 2)[0] == (13, pytest.approx(1.0))
    assert [i for i, _ in matrix.top(vectors[3], 5, {"a"})] == [10, 11]
    assert matrix.top(vectors[3], 5, {"nothing"}) == []


def test_large_matrices_rank_like_exact_float32() -> None:
    from openwen.knowledge.embedder import as_matrix, to_blob
    from openwen.knowledge.vectors import HALF_ROWS, Matrix

    rng = np.random.default_rng(3)
    vectors = as_matrix(rng.standard_normal((HALF_ROWS + 10, 16)))
    rows = [(i, "even" if i % 2 == 0 else "odd", to_blob(v)) for i, v in enumerate(vectors)]
    matrix = Matrix.build(rows)
    assert matrix.half is not None and len(matrix) == HALF_ROWS + 10
    query = as_matrix(rng.standard_normal(16))[0]
    exact = vectors @ query
    expected = [int(i) for i in np.argsort(-exact)[:10]]
    got = matrix.top(query, 10)
    assert [i for i, _ in got] == expected
    assert [s for _, s in got] == pytest.approx([float(exact[i]) for i in expected], abs=1e-3)
    odd = matrix.top(query, 10, {"odd"})
    assert len(odd) == 10 and all(i % 2 == 1 for i, _ in odd)
