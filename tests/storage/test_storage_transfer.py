"""Export to Markdown and JSON, import JSON (round trip, validation, all-or-nothing)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from sqlalchemy import func, select

from openwen.errors import InvalidRequestError
from openwen.messages import ToolCall
from openwen.storage import ConversationRecord, Storage, UserRecord
from openwen.storage.models import Message


@pytest.fixture
def branched(storage: Storage, alice: UserRecord) -> ConversationRecord:
    """A conversation with an edited question (two branches), thinking and a tool call."""
    chat = storage.conversations.create(
        alice.id,
        "Weather 天气",
        system_prompt="You are helpful.",
        settings={"model": "qwen3", "thinking": True},
    )
    add = storage.messages.add
    q1 = add(alice.id, chat.id, parent_id=None, role="user", content="Weather in Paris?")
    call = ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')
    a1 = add(
        alice.id, chat.id, parent_id=q1.id, role="assistant", reasoning="Use the tool.",
        tool_calls=[call], metadata={"usage": {"completion_tokens": 9}},
    )  # fmt: skip
    t1 = add(
        alice.id, chat.id, parent_id=a1.id, role="tool", content="```18°C```", tool_call_id="call_1"
    )
    add(alice.id, chat.id, parent_id=t1.id, role="assistant", content="It is **18°C**.")
    q2 = add(alice.id, chat.id, parent_id=None, role="user", content="巴黎天气怎么样？")
    add(alice.id, chat.id, parent_id=q2.id, role="assistant", content="晴", status="incomplete")
    storage.messages.set_current_leaf(alice.id, q1.id)
    return storage.conversations.get(alice.id, chat.id)


def comparable(tree: list[dict[str, Any]]) -> list[tuple]:
    """A tree without its ids: (parent's position, role, content, ...) per message."""
    position = {m["id"]: i for i, m in enumerate(tree)}
    return [
        (
            None if m["parent_id"] is None else position[m["parent_id"]],
            m["role"],
            m["content"],
            m["reasoning"],
            json.dumps(m["tool_calls"]),
            m["tool_call_id"],
            m["status"],
            json.dumps(m["metadata"], sort_keys=True),
            m["created_at"],
        )
        for m in tree
    ]


def test_export_json(storage: Storage, alice: UserRecord, branched: ConversationRecord) -> None:
    data = storage.transfer.export_json(alice.id, branched.id)
    assert data["format"] == "openwen.conversation" and data["version"] == 1
    assert data["conversation"]["title"] == "Weather 天气"
    assert data["conversation"]["settings"] == {"model": "qwen3", "thinking": True}
    assert [m["role"] for m in data["current_branch"]] == ["user", "assistant", "tool", "assistant"]
    assert data["current_branch"][-1]["id"] == data["conversation"]["current_leaf_id"]
    assert len(data["tree"]) == 6
    assert data["tree"][1]["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]
    json.dumps(data)  # plain JSON all the way down


def test_export_markdown(storage: Storage, alice: UserRecord, branched: ConversationRecord) -> None:
    text = storage.transfer.export_markdown(alice.id, branched.id)
    assert text.startswith("# Weather 天气\n")
    assert "model qwen3" in text
    assert "## System prompt" in text and "You are helpful." in text
    assert "<summary>Thinking</summary>" in text and "Use the tool." in text
    assert "**Tool call** `get_weather` (`call_1`)" in text
    assert "## Tool result (`call_1`)\n\n````\n```18°C```\n````" in text
    assert text.rstrip().endswith("It is **18°C**.")
    assert "巴黎" not in text  # only the current branch


def test_json_round_trip(storage: Storage, alice: UserRecord, branched: ConversationRecord) -> None:
    exported = storage.transfer.export_json(alice.id, branched.id)
    imported = storage.transfer.import_json(alice.id, json.dumps(exported))
    assert imported.id != branched.id
    again = storage.transfer.export_json(alice.id, imported.id)
    assert comparable(again["tree"]) == comparable(exported["tree"])
    assert {m["id"] for m in again["tree"]}.isdisjoint({m["id"] for m in exported["tree"]})
    for key in ("title", "system_prompt", "settings", "pinned", "created_at"):
        assert again["conversation"][key] == exported["conversation"][key]
    assert [m["content"] for m in again["current_branch"]] == [
        m["content"] for m in exported["current_branch"]
    ]
    assert storage.conversations.count_for(alice.id) == 2


def test_import_into_another_account(
    storage: Storage, alice: UserRecord, bob: UserRecord, branched: ConversationRecord
) -> None:
    exported = storage.transfer.export_json(alice.id, branched.id)
    mine = storage.transfer.import_json(bob.id, exported)
    assert mine.user_id == bob.id
    assert len(storage.messages.tree(bob.id, mine.id)) == 6
    assert storage.conversations.count_for(alice.id) == 1


def test_import_a_plain_branch(storage: Storage, alice: UserRecord) -> None:
    data = {
        "format": "openwen.conversation",
        "version": 1,
        "conversation": {"title": "From elsewhere"},
        "current_branch": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ]},
            {"role": "tool", "content": "ok", "tool_call_id": "c"},
            {"role": "assistant", "content": "Done", "status": "streaming"},
        ],
    }  # fmt: skip
    chat = storage.transfer.import_json(alice.id, data)
    path = storage.messages.path(alice.id, chat.id)
    assert [m.content for m in path] == ["Hi", "", "ok", "Done"]
    assert path[1].tool_calls == (ToolCall(id="c", name="f", arguments="{}"),)
    assert path[-1].status == "incomplete"  # nothing is streaming after an import


def broken_exports(good: dict[str, Any]) -> list[Any]:
    def changed(edit: Any) -> dict[str, Any]:
        data = copy.deepcopy(good)
        edit(data)
        return data

    first_id = good["tree"][0]["id"]
    return [
        "not json {",
        b"\xff\xfe",
        "[]",
        {},
        changed(lambda d: d.update(format="something.else")),
        changed(lambda d: d.update(version=2)),
        changed(lambda d: (d.pop("tree"), d.pop("current_branch"))),
        changed(lambda d: d["tree"][2].update(role="wizard")),
        changed(lambda d: d["tree"][2].update(status="done")),
        changed(lambda d: d["tree"][3].update(parent_id=123456789)),
        changed(lambda d: d["tree"][3].update(id=first_id)),
        changed(lambda d: d["tree"][0].update(parent_id=d["tree"][3]["id"])),  # a cycle
        changed(lambda d: d["tree"][1].update(id=None)),
        changed(lambda d: d["tree"][1].update(content=["parts"])),
        changed(lambda d: d["tree"][1].update(metadata="text")),
        changed(lambda d: d["tree"][5].update(metadata={"nan": float("nan")})),
        changed(lambda d: d["conversation"].update(current_leaf_id=424242)),
        changed(lambda d: d["conversation"].update(title="x" * 1000)),
        changed(lambda d: d["conversation"].update(settings=[1, 2])),
        changed(lambda d: d["tree"][1]["tool_calls"][0].update(function={"name": ""})),
    ]


def test_bad_imports_raise_and_store_nothing(
    storage: Storage, alice: UserRecord, bob: UserRecord, branched: ConversationRecord
) -> None:
    good = storage.transfer.export_json(alice.id, branched.id)
    for bad in broken_exports(good):
        with pytest.raises(InvalidRequestError) as info:
            storage.transfer.import_json(bob.id, bad)
        assert info.value.status == 400
        assert storage.conversations.count_for(bob.id) == 0, bad
    with storage.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 6  # alice's only
