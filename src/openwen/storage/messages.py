"""Messages of a conversation, stored as a tree.

Each message has a parent (None for a root). Editing a message or regenerating an answer adds a
*sibling* (a new child of the same parent), so every earlier version stays reachable. The
conversation's ``current_leaf_id`` picks the branch shown: the path from the root to that leaf.

Streaming: add the assistant message with ``status="streaming"``, ``append`` deltas as they come
(one small UPDATE each; streaming messages are kept out of the search index until they finish),
then ``set_status`` to complete / incomplete / error with the final metadata.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import func, literal, select, update
from sqlalchemy.orm import Session, aliased

from openwen.errors import InvalidRequestError
from openwen.messages import ToolCall
from openwen.storage.base import (
    Repository,
    clean_text,
    json_object,
    message_not_found,
    owned_conversation,
    owned_message,
    rowcount,
    utcnow,
)
from openwen.storage.cluster import AnswerOwner
from openwen.storage.feedback import feedback_of
from openwen.storage.models import ROLES, STATUSES, Conversation, Message
from openwen.storage.records import MessageRecord, ThreadEntry, tool_calls_to_json


def _check(role: str | None = None, status: str | None = None) -> None:
    if role is not None and role not in ROLES:
        raise InvalidRequestError(f"role must be one of {', '.join(ROLES)}", param="role")
    if status is not None and status not in STATUSES:
        raise InvalidRequestError(f"status must be one of {', '.join(STATUSES)}", param="status")


def _tool_calls(calls: Sequence[ToolCall] | None) -> list[dict[str, Any]] | None:
    if calls is not None and not all(isinstance(c, ToolCall) for c in calls):
        raise InvalidRequestError("tool_calls must be ToolCall values", param="tool_calls")
    return tool_calls_to_json(list(calls) if calls else None)


def _merge_metadata(old: dict[str, Any], new: dict[str, Any] | None) -> dict[str, Any]:
    """Merge ``new`` into ``old``; a key set to None is removed."""
    if new is None:
        return old
    merged = {**old, **json_object(new, "metadata")}
    return {k: v for k, v in merged.items() if v is not None}


class MessageRepo(Repository):
    """Messages of users' conversations. ``instance_id`` (set by the app) is recorded as the
    owner of every ``streaming`` message added, in the same transaction (see
    :mod:`openwen.storage.cluster`)."""

    instance_id: str | None = None

    def add(
        self,
        user_id: int,
        conversation_id: str,
        *,
        parent_id: int | None,
        role: str,
        content: str = "",
        reasoning: str = "",
        tool_calls: Sequence[ToolCall] | None = None,
        tool_call_id: str | None = None,
        status: str = "complete",
        metadata: dict[str, Any] | None = None,
        make_current: bool = True,
    ) -> MessageRecord:
        """Add a child of ``parent_id`` (None: a new root). With ``make_current`` (the default)
        the new message becomes the conversation's current leaf."""
        _check(role, status)
        if not isinstance(content, str) or not isinstance(reasoning, str):
            raise InvalidRequestError("content and reasoning must be strings", param="content")
        now = utcnow()
        row = Message(
            conversation_id=conversation_id,
            parent_id=parent_id,
            role=role,
            content=clean_text(content),
            reasoning=clean_text(reasoning),
            tool_calls=_tool_calls(tool_calls),
            tool_call_id=None if tool_call_id is None else clean_text(str(tool_call_id)),
            status=status,
            meta=_merge_metadata({}, metadata),
            created_at=now,
            updated_at=now,
        )
        with self.db.write() as s:
            conversation = owned_conversation(s, user_id, conversation_id)
            if parent_id is not None:
                self._in_conversation(s, conversation.id, parent_id)
            s.add(row)
            s.flush()
            if status == "streaming" and self.instance_id is not None:
                s.add(AnswerOwner(message_id=row.id, instance_id=self.instance_id))
            if make_current:
                conversation.current_leaf_id = row.id
            conversation.updated_at = now
            return MessageRecord.of(row)

    def get(self, user_id: int, message_id: int) -> MessageRecord:
        with self.db.read() as s:
            return MessageRecord.of(owned_message(s, user_id, message_id))

    def path(
        self, user_id: int, conversation_id: str, leaf_id: int | None = None
    ) -> list[MessageRecord]:
        """The branch from its root down to ``leaf_id`` (default: the current leaf), root first.
        Empty for a conversation without messages."""
        with self.db.read() as s:
            return [MessageRecord.of(r) for r in self._path(s, user_id, conversation_id, leaf_id)]

    def preferred_path(
        self, user_id: int, conversation_id: str, leaf_id: int | None = None
    ) -> list[MessageRecord]:
        """``path`` with each answer the user edited holding the edited text (what the web app
        shows and later prompts continue from; the stored original is unchanged)."""
        with self.db.read() as s:
            path = [MessageRecord.of(r) for r in self._path(s, user_id, conversation_id, leaf_id)]
            edits = feedback_of(s, user_id, [m.id for m in path if m.role == "assistant"])
        out = []
        for m in path:
            edited = edits[m.id].edited_content if m.id in edits else None
            out.append(m if edited is None else replace(m, content=edited))
        return out

    def thread(
        self, user_id: int, conversation_id: str, leaf_id: int | None = None
    ) -> list[ThreadEntry]:
        """``path`` with each message's sibling ids, for showing and switching branches."""
        with self.db.read() as s:
            path = self._path(s, user_id, conversation_id, leaf_id)
            if not path:
                return []
            parents = {m.parent_id for m in path}
            query = select(Message.id, Message.parent_id).where(
                Message.conversation_id == path[0].conversation_id
            )
            siblings: dict[int | None, list[int]] = {}
            for message_id, parent_id in s.execute(query.order_by(Message.id)):
                if parent_id in parents:
                    siblings.setdefault(parent_id, []).append(message_id)
            rated = feedback_of(s, user_id, [m.id for m in path if m.role == "assistant"])
            return [ThreadEntry(MessageRecord.of(m), tuple(siblings[m.parent_id]), rated.get(m.id))
                    for m in path]

    def tree(self, user_id: int, conversation_id: str) -> list[MessageRecord]:
        """Every message of the conversation, oldest first (parents before children)."""
        with self.db.read() as s:
            conversation = owned_conversation(s, user_id, conversation_id)
            query = select(Message).where(Message.conversation_id == conversation.id)
            return [MessageRecord.of(r) for r in s.scalars(query.order_by(Message.id))]

    def children(self, user_id: int, message_id: int) -> list[MessageRecord]:
        with self.db.read() as s:
            parent = owned_message(s, user_id, message_id)
            query = select(Message).where(
                Message.conversation_id == parent.conversation_id,
                Message.parent_id == parent.id,
            )
            return [MessageRecord.of(r) for r in s.scalars(query.order_by(Message.id))]

    def siblings(self, user_id: int, message_id: int) -> list[MessageRecord]:
        """The message and its siblings (same parent; for a root, all roots), oldest first."""
        with self.db.read() as s:
            message = owned_message(s, user_id, message_id)
            same_parent = (
                Message.parent_id.is_(None)
                if message.parent_id is None
                else Message.parent_id == message.parent_id
            )
            query = select(Message).where(
                Message.conversation_id == message.conversation_id, same_parent
            )
            return [MessageRecord.of(r) for r in s.scalars(query.order_by(Message.id))]

    def set_current_leaf(
        self, user_id: int, message_id: int, *, descend: bool = True
    ) -> MessageRecord:
        """Show the branch through ``message_id``. With ``descend`` (the default) the current
        leaf becomes the newest message below it, so switching to a sibling shows that
        sibling's latest continuation. Returns the new current leaf."""
        with self.db.write() as s:
            message = owned_message(s, user_id, message_id)
            leaf_id = self._newest_descendant(s, message) if descend else message.id
            conversation = owned_conversation(s, user_id, message.conversation_id)
            conversation.current_leaf_id = leaf_id
            leaf = s.get(Message, leaf_id)
            assert leaf is not None
            return MessageRecord.of(leaf)

    def append(self, user_id: int, message_id: int, content: str = "", reasoning: str = "") -> None:
        """Append streamed text to a message whose status is ``streaming``."""
        if not content and not reasoning:
            return
        now = utcnow()
        with self.db.write() as s:
            owned = select(Conversation.id).where(Conversation.user_id == user_id)
            result = s.execute(
                update(Message)
                .where(
                    Message.id == message_id,
                    Message.status == "streaming",
                    Message.conversation_id.in_(owned),
                )
                .values(
                    content=Message.content + clean_text(content),
                    reasoning=Message.reasoning + clean_text(reasoning),
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            if rowcount(result) == 0:
                owned_message(s, user_id, message_id)  # raises NotFoundError if not theirs
                raise InvalidRequestError(
                    f"message {message_id} is not streaming", param="message_id"
                )

    def update(
        self,
        user_id: int,
        message_id: int,
        *,
        content: str | None = None,
        reasoning: str | None = None,
        tool_calls: Sequence[ToolCall] | None = None,
        status: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> MessageRecord:
        """Set the given fields (None leaves a field as it is). ``metadata`` is merged into the
        stored object; a key given as None is removed."""
        _check(status=status)
        with self.db.write() as s:
            row = owned_message(s, user_id, message_id)
            if content is not None:
                row.content = clean_text(str(content))
            if reasoning is not None:
                row.reasoning = clean_text(str(reasoning))
            if tool_calls is not None:
                row.tool_calls = _tool_calls(tool_calls)
            if status is not None:
                row.status = status
            row.meta = _merge_metadata(dict(row.meta or {}), metadata)
            row.updated_at = utcnow()
            conversation = s.get(Conversation, row.conversation_id)
            assert conversation is not None
            conversation.updated_at = row.updated_at
            s.flush()
            return MessageRecord.of(row)

    def set_status(
        self, user_id: int, message_id: int, status: str, metadata: dict[str, Any] | None = None
    ) -> MessageRecord:
        """Mark a message complete / streaming / incomplete / error, merging ``metadata``
        (model, sampling, token counts, timings)."""
        if status is None:
            raise InvalidRequestError("status is required", param="status")
        return self.update(user_id, message_id, status=status, metadata=metadata)

    def recover_interrupted(self) -> int:
        """Mark every ``streaming`` message ``incomplete`` (for startup, after a crash: nothing
        is streaming then). Not scoped to a user. Returns how many were marked."""
        with self.db.write() as s:
            result = s.execute(
                update(Message)
                .where(Message.status == "streaming")
                .values(status="incomplete", updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            return rowcount(result)

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _in_conversation(s: Session, conversation_id: str, message_id: int) -> Message:
        row = s.scalar(
            select(Message).where(
                Message.id == message_id, Message.conversation_id == conversation_id
            )
        )
        if row is None:
            raise message_not_found(message_id)
        return row

    def _path(
        self, s: Session, user_id: int, conversation_id: str, leaf_id: int | None
    ) -> list[Message]:
        conversation = owned_conversation(s, user_id, conversation_id)
        if leaf_id is None:
            leaf_id = conversation.current_leaf_id
            if leaf_id is None:
                return []
        leaf = self._in_conversation(s, conversation.id, leaf_id)
        start = select(Message.id, Message.parent_id, literal(0).label("depth")).where(
            Message.id == leaf.id
        )
        up = start.cte("path_up", recursive=True)
        parent = aliased(Message)
        up = up.union_all(
            select(parent.id, parent.parent_id, up.c.depth + 1).where(parent.id == up.c.parent_id)
        )
        query = select(Message).join(up, Message.id == up.c.id).order_by(up.c.depth.desc())
        return list(s.scalars(query))

    @staticmethod
    def _newest_descendant(s: Session, message: Message) -> int:
        """The newest message in the subtree under ``message`` (itself included). It is always
        a leaf: a child is newer than its parent, so the newest node has no children."""
        start = select(Message.id).where(Message.id == message.id)
        down = start.cte("subtree", recursive=True)
        child = aliased(Message)
        down = down.union_all(select(child.id).where(child.parent_id == down.c.id))
        newest = s.scalar(select(func.max(down.c.id)))
        return int(newest if newest is not None else message.id)
