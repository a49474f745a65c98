"""``openwen docs``, ``openwen memory`` and the ``ask --collection`` helper, run as commands
against a real SQLite database in the test's OPENWEN_HOME."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from openwen.cli import docs_cmd
from openwen.config import load_settings


class SharedEmbedder:
    """The session's embedder, kept open across commands (each command would load its own)."""

    def __init__(self, real):
        self.real, self.name = real, real.name

    def embed(self, texts):
        return self.real.embed(texts)

    def close(self) -> None:
        pass


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, embedder):
    monkeypatch.setattr(docs_cmd.LocalEmbedder, "minilm",
                        classmethod(lambda cls: SharedEmbedder(embedder)))
    app = typer.Typer()
    docs_cmd.register(app)

    @app.command("ask")
    def ask(question: str, collection: str, as_json: bool = typer.Option(False, "--json")):
        settings = load_settings(n_ctx=2048, n_threads=2).settings
        docs_cmd.ask_collection(question, collection, settings=settings, max_tokens=24,
                                temperature=0.0, seed=1, as_json=as_json)

    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, result.output
        return result.output

    return run


def test_docs_add_list_search_rm(cli, docs: Path) -> None:
    out = cli("docs", "add", str(docs), "--collection", "home")
    assert "lease.md: added (3 passages" in out and "birthdays.csv: added" in out
    assert "lease.md: unchanged" in cli("docs", "add", str(docs / "lease.md"))
    listed = json.loads(cli("docs", "list", "--json"))
    assert sorted(d["filename"] for d in listed) == [
        "birthdays.csv", "lease.md", "plants.html", "voyage.txt"]
    assert all(d["collections"] == ["home"] for d in listed)
    out = cli("docs", "search", "--collection", "home", "--limit", "2", "late fee for rent")
    assert out.startswith('[1] lease.md, "Apartment lease > Rent"  score ')
    assert "[2]" in out and "[3]" not in out
    hits = json.loads(cli("docs", "search", "--json", "--mode", "fulltext", "boiler"))
    assert hits[0]["section"] == "Apartment lease > Heating"
    assert "home\t4 documents" in cli("docs", "collections")
    assert "took voyage.txt out of home" in cli("docs", "rm", "--collection", "home",
                                                "voyage.txt")
    assert "removed lease.md" in cli("docs", "rm", "lease.md")
    assert "lease.md" not in cli("docs", "list")
    assert "document 'lease.md' not found" in cli("docs", "rm", "lease.md", code=1)


def test_docs_add_reports_bad_files_and_carries_on(cli, docs: Path, tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8")
    out = cli("docs", "add", str(tmp_path / "empty.txt"), str(tmp_path / "photo.jpg"),
              str(docs / "voyage.txt"), code=1)
    assert "empty.txt: the file is empty" in out
    assert "photo.jpg: unsupported file type" in out
    assert "voyage.txt: added" in out
    assert [d["filename"] for d in json.loads(cli("docs", "list", "--json"))] == ["voyage.txt"]
    assert "collection 'nope' not found" in cli("docs", "search", "-c", "nope", "x", code=1)


def test_memory_commands(cli) -> None:
    assert "remembered (1): I prefer metric units." in cli("memory", "add",
                                                           "I prefer metric units.")
    cli("memory", "add", "My sister is called Ana.")
    assert "updated (1): I prefer imperial units." in cli("memory", "edit", "1",
                                                          "I prefer imperial units.")
    listed = json.loads(cli("memory", "list", "--json"))
    assert [m["text"] for m in listed] == ["I prefer imperial units.", "My sister is called Ana."]
    assert "forgot (2)" in cli("memory", "rm", "2")
    assert "memory 2 not found" in cli("memory", "rm", "2", code=1)
    assert "My sister" not in cli("memory", "list")


@pytest.mark.slow
def test_ask_a_collection_with_citations(cli, docs: Path) -> None:
    cli("docs", "add", str(docs / "lease.md"), str(docs / "voyage.txt"), "-c", "home")
    answer = json.loads(cli("ask", "--json", "Are reptiles allowed?", "home"))
    assert answer["collection"] == "home" and answer["finish_reason"] in ("stop", "length")
    assert answer["content"].strip()
    labels = [c["label"] for c in answer["citations"]]
    assert answer["mode"] == "whole" and labels == [
        "lease.md, whole document", "voyage.txt, whole document"]
    assert "collection 'nowhere' not found" in cli("ask", "Hi?", "nowhere", code=1)
