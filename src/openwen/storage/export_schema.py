"""The validated shape of a conversation export, and the order to insert its message tree in."""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from openwen.errors import InvalidRequestError
from openwen.messages import ToolCall
from openwen.storage.base import plain_json
from openwen.storage.records import tool_calls_to_json

FORMAT = "openwen.conversation"
VERSION = 1

Key = int | str


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore")


class FunctionIn(_In):
    name: str = Field(min_length=1, max_length=256)
    arguments: str = ""


class ToolCallIn(_In):
    id: str = Field(min_length=1, max_length=255)
    type: Literal["function"] = "function"
    function: FunctionIn


class MessageIn(_In):
    id: Key | None = None
    parent_id: Key | None = None
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | None = ""
    reasoning: str | None = ""
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = Field(None, max_length=255)
    status: Literal["complete", "streaming", "incomplete", "error"] = "complete"
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @field_validator("metadata")
    @classmethod
    def _plain_json(cls, value: dict[str, Any]) -> dict[str, Any]:
        return dict(plain_json(value))

    def tool_calls_json(self) -> list[dict[str, Any]] | None:
        if not self.tool_calls:
            return None
        return tool_calls_to_json(
            [ToolCall(c.id, c.function.name, c.function.arguments) for c in self.tool_calls]
        )


class ConversationIn(_In):
    title: str | None = None
    pinned: bool = False
    system_prompt: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    current_leaf_id: Key | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class Node:
    """A message to import, with its parent as a key into the same list (None for a root)."""

    key: str
    parent_key: str | None
    message: MessageIn


class ExportIn(_In):
    format: Literal["openwen.conversation"]
    version: Literal[1]
    conversation: ConversationIn = Field(default_factory=ConversationIn)
    current_branch: list[MessageIn] | None = None
    tree: list[MessageIn] | None = None

    @model_validator(mode="after")
    def _has_messages(self) -> ExportIn:
        if self.tree is None and self.current_branch is None:
            raise ValueError("needs a 'tree' or a 'current_branch' list")
        return self

    def nodes(self) -> list[Node]:
        """The messages to import: the tree, or else the current branch as a chain."""
        if self.tree is None:
            branch = self.current_branch or []
            return [Node(f"#{i}", f"#{i - 1}" if i else None, m) for i, m in enumerate(branch)]
        keys: set[str] = set()
        for i, m in enumerate(self.tree):
            if m.id is None:
                raise _invalid(f"tree.{i}.id: every message of a tree needs an id")
            if str(m.id) in keys:
                raise _invalid(f"tree.{i}.id: the id {m.id!r} appears twice")
            keys.add(str(m.id))
        nodes = []
        for i, m in enumerate(self.tree):
            parent = None if m.parent_id is None else str(m.parent_id)
            if parent is not None and parent not in keys:
                raise _invalid(f"tree.{i}.parent_id: no message has the id {m.parent_id!r}")
            nodes.append(Node(str(m.id), parent, m))
        return nodes

    def leaf_key(self, nodes: list[Node]) -> str | None:
        """The message to show: ``current_leaf_id`` when given, else the last message listed
        that has no children."""
        wanted = self.conversation.current_leaf_id
        if wanted is not None and self.tree is not None:
            if str(wanted) not in {n.key for n in nodes}:
                raise _invalid(f"conversation.current_leaf_id: no message has the id {wanted!r}")
            return str(wanted)
        parents = {n.parent_key for n in nodes}
        leaves = [n.key for n in nodes if n.key not in parents]
        return leaves[-1] if leaves else None


def insertion_order(nodes: list[Node]) -> list[int]:
    """Indexes of ``nodes`` with every parent before its children, otherwise in list order
    (so new ids keep the original order). A cycle is an error."""
    children: dict[str, list[int]] = {}
    ready: list[int] = []
    for i, node in enumerate(nodes):
        if node.parent_key is None:
            ready.append(i)
        else:
            children.setdefault(node.parent_key, []).append(i)
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for child in children.get(nodes[i].key, []):
            heapq.heappush(ready, child)
    if len(order) != len(nodes):
        raise _invalid("the message tree has a cycle (a message is its own ancestor)")
    return order


def _invalid(message: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"not a valid openwen conversation export: {message}", code="invalid_export"
    )
