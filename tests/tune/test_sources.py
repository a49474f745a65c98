"""Datasets from what openwen stores: answers rated good or edited in a user's conversations
(context turns not learnt, thumbs-down left out, tool answers left out), and a document
collection's text; ``openwen tune create --from-conversations / --from-docs`` queues them with
their origin in the dataset's name and hash."""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner, Result

from openwen.cli import tune_cmd
from openwen.config import Settings
from openwen.messages import ToolCall
from openwen.storage import Storage, UserRecord
from openwen.tune.errors import DatasetError
from openwen.tune.jobs import JobStore
from openwen.tune.sources import MAX_CONTEXT_MESSAGES, conversations_dataset

SYSTEM = "You are the Zorblax guide."


def _store(home: Path) -> Storage:
    home.mkdir(parents=True, exist_ok=True)
    return Storage.open(f"sqlite:///{home / 'openwen.db'}")


def _rated_chats(storage: Storage) -> tuple[UserRecord, dict[str, int]]:
    """alice: a chat whose answers are rated good, edited, bad, or used a tool; bob: one good."""
    alice = storage.users.create("alice", None, is_admin=True)
    bob = storage.users.create("bob", None)
    chat = storage.conversations.create(alice.id, "festival", system_prompt=SYSTEM)
    add = storage.messages.add
    ids: dict[str, int] = {}
    parent = None
    for key, question, answer in (
        ("good", "Where is the Zorblax festival?", "In Quillmere."),
        ("edited", "When is it?", "In spring, I think."),
        ("bad", "Who founded it?", "Napoleon."),
    ):
        q = add(alice.id, chat.id, parent_id=parent, role="user", content=question)
        a = add(alice.id, chat.id, parent_id=q.id, role="assistant", content=answer)
        ids[key] = a.id
        parent = a.id
    q = add(alice.id, chat.id, parent_id=parent, role="user", content="What is 6*7?")
    step = add(alice.id, chat.id, parent_id=q.id, role="assistant",
               tool_calls=[ToolCall("c1", "calculator", '{"expression": "6*7"}')])
    result = add(alice.id, chat.id, parent_id=step.id, role="tool", content="42",
                 tool_call_id="c1")
    ids["tool"] = add(alice.id, chat.id, parent_id=result.id, role="assistant",
                      content="It is 42.").id
    fb = storage.feedback
    fb.set(alice.id, ids["good"], rating="good")
    fb.set(alice.id, ids["edited"], edited_content="In the first week of May.")
    fb.set(alice.id, ids["bad"], rating="bad", edited_content="Nobody knows.")
    fb.set(alice.id, ids["tool"], rating="good")
    other = storage.conversations.create(bob.id, "bob's")
    bq = add(bob.id, other.id, parent_id=None, role="user", content="Bob's secret?")
    fb.set(bob.id, add(bob.id, other.id, parent_id=bq.id, role="assistant",
                       content="Bob's answer.").id, rating="good")
    return alice, ids


def test_rated_and_edited_answers_become_chat_examples(tmp_path: Path) -> None:
    storage = _store(tmp_path / "db")
    try:
        alice, _ = _rated_chats(storage)
        built = conversations_dataset(storage, alice.id, "alice")
        rows = [json.loads(line) for line in built.data.decode().splitlines()]
        assert built.name == "conversations:alice:rated=both"
        assert (built.examples, built.skipped) == (2, 1)  # the tool answer is left out
        assert rows[0] == {"messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "Where is the Zorblax festival?"},
            {"role": "assistant", "content": "In Quillmere."}]}
        assert rows[1] == {"messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "Where is the Zorblax festival?"},
            {"role": "assistant", "content": "In Quillmere.", "weight": 0},  # context only
            {"role": "user", "content": "When is it?"},
            {"role": "assistant", "content": "In the first week of May."}]}  # the edited text
        assert "Napoleon" not in built.data.decode() and "Nobody" not in built.data.decode()
        assert "Bob" not in built.data.decode()
        good = conversations_dataset(storage, alice.id, "alice", "good")
        assert good.examples == 1 and b"first week" not in good.data
        edited = conversations_dataset(storage, alice.id, "alice", "edited")
        assert edited.examples == 1 and b"first week" in edited.data
        with pytest.raises(DatasetError, match="rated must be one of"):
            conversations_dataset(storage, alice.id, "alice", "great")
    finally:
        storage.close()


def test_context_is_bounded(tmp_path: Path) -> None:
    storage = _store(tmp_path / "db")
    try:
        user = storage.users.create("carol", None)
        chat = storage.conversations.create(user.id, "long")
        parent = None
        for i in range(12):
            q = storage.messages.add(user.id, chat.id, parent_id=parent, role="user",
                                     content=f"question {i}")
            parent = storage.messages.add(user.id, chat.id, parent_id=q.id, role="assistant",
                                          content=f"answer {i}").id
        storage.feedback.set(user.id, parent, rating="good")
        row = json.loads(conversations_dataset(storage, user.id, "carol").data)
        messages = row["messages"]
        assert len(messages) == MAX_CONTEXT_MESSAGES + 2
        assert messages[0] == {"role": "user", "content": "question 8"}
        assert messages[-2:] == [{"role": "user", "content": "question 11"},
                                 {"role": "assistant", "content": "answer 11"}]
    finally:
        storage.close()


def test_nothing_rated_is_a_clear_error(tmp_path: Path) -> None:
    storage = _store(tmp_path / "db")
    try:
        dave = storage.users.create("dave", None)
        chat = storage.conversations.create(dave.id, "unrated")
        q = storage.messages.add(dave.id, chat.id, parent_id=None, role="user", content="hi")
        a = storage.messages.add(dave.id, chat.id, parent_id=q.id, role="assistant",
                                 content="hello")
        with pytest.raises(DatasetError, match="no answers marked good or edited in dave's"):
            conversations_dataset(storage, dave.id, "dave")
        storage.feedback.set(dave.id, a.id, rating="bad", edited_content="hello there")
        with pytest.raises(DatasetError, match="no answers marked good or edited"):
            conversations_dataset(storage, dave.id, "dave")  # thumbs-down never counts
    finally:
        storage.close()


def _wait_final(store: JobStore, name: str, timeout: float = 600) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = store.get(name).state
        if state not in ("queued", "running"):
            return state
        time.sleep(0.2)
    raise AssertionError(f"{name} never ended: {store.get(name).to_dict()}")


def _cli(*args: str) -> Result:
    """``openwen tune ...`` in this process (the settings come from the test's environment)."""
    app = typer.Typer()
    tune_cmd.register(app)
    return CliRunner().invoke(app, ["tune", *args])


def test_cli_queues_a_job_from_conversations_with_its_origin(settings: Settings) -> None:
    storage = _store(settings.home)
    try:
        _rated_chats(storage)
    finally:
        storage.close()
    both = _cli("create", "--base", "smollm2", "--name", "x", "--from-conversations",
                "--data", "f.jsonl")
    assert both.exit_code == 2 and "exactly one of" in both.stderr
    bob = _cli("create", "--base", "smollm2", "--name", "x", "--from-conversations", "--user",
               "bob", "--rated", "edited")
    assert bob.exit_code == 1 and "no answers edited in bob's conversations" in bob.stderr
    store = JobStore(settings)
    assert store.list() == []
    out = _cli("create", "--base", "smollm2", "--name", "mine", "--from-conversations",
               "--user", "alice", "--epochs", "1")
    assert out.exit_code == 0, out.stderr
    assert "dataset conversations:alice:rated=both: 2 examples" in out.stdout
    assert "1 training and 1 held-out examples" in out.stdout
    assert "1 rated answers used tools and were left out" in out.stderr
    store.cancel("mine")  # the data is what this test is about, not the training
    job = store.get("mine")
    assert job.spec["dataset"] == "conversations:alice:rated=both"
    assert job.spec["dataset_sha256"] == hashlib.sha256(job.data_path.read_bytes()).hexdigest()
    assert job.spec["source"] == {"kind": "conversations", "user": "alice", "rated": "both"}
    assert b"first week of May" in job.data_path.read_bytes()
    assert _wait_final(store, "mine") == "cancelled"


def test_cli_queues_a_document_collection_as_text(settings: Settings) -> None:
    from openwen.knowledge.documents import DocumentStore, NewDocument
    from openwen.knowledge.records import Scope

    text = "# The Zorblax festival\n\n" + "\n\n".join(
        f"Day {i}: the festival in Quillmere has a parade of {i} lanterns." for i in range(80))
    storage = _store(settings.home)
    try:
        user = storage.users.create("local", None, is_admin=True)
        new = NewDocument(filename="manual.md", kind="markdown", sha256="0" * 64,
                          size_bytes=len(text), pages=None, content=text,
                          embedding_model="all-minilm-l6-v2")
        DocumentStore(storage.db).insert(user.id, new, [], np.zeros((0, 384), np.float32),
                                         Scope(collection="manual"))
    finally:
        storage.close()
    out = _cli("create", "--base", "smollm2", "--name", "manual-lm", "--from-docs", "manual",
               "--max-length", "128")
    assert out.exit_code == 0, out.stderr
    assert "dataset documents:local:collection=manual: 1 examples" in out.stdout
    store = JobStore(settings)
    store.cancel("manual-lm")
    job = store.get("manual-lm")
    assert job.spec["dataset"] == "documents:local:collection=manual"
    assert job.spec["source"]["kind"] == "documents"
    row = json.loads(job.data_path.read_text())
    assert row == {"text": text}
    # one long document, cut into 128-token pieces, is still split for evaluation
    found = re.search(r"queued 'manual-lm': (\d+) training and (\d+) held-out", out.stdout)
    assert found, out.stdout
    assert int(found[1]) >= 8 and int(found[2]) >= 1
    assert _wait_final(store, "manual-lm") == "cancelled"


def test_a_missing_collection_is_a_clear_error(tmp_path: Path) -> None:
    from openwen.errors import NotFoundError
    from openwen.tune.sources import documents_dataset

    storage = _store(tmp_path / "db")
    try:
        user = storage.users.create("erin", None)
        with pytest.raises(NotFoundError, match="nope"):
            documents_dataset(storage, user.id, "erin", "nope")
        from openwen.knowledge.documents import DocumentStore

        DocumentStore(storage.db).create_collection(user.id, "empty")
        with pytest.raises(DatasetError, match="'empty' has no documents"):
            documents_dataset(storage, user.id, "erin", "empty")
    finally:
        storage.close()
