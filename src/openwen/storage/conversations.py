"""Conversations of one user: create, list, get, rename, pin, settings, delete.

``updated_at`` is the time of the last change to what the conversation says (messages, title,
system prompt, settings); pinning does not touch it. Lists put pinned conversations first, then
the most recently updated.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, func, select

from openwen.errors import InvalidRequestError, NotFoundError
from openwen.storage.base import (
    Repository,
    clean_text,
    conversation_not_found,
    json_object,
    owned_conversation,
    rowcount,
    utcnow,
)
from openwen.storage.models import Conversation, User
from openwen.storage.records import ConversationRecord

DEFAULT_TITLE = "New chat"
MAX_TITLE = 500
MAX_SYSTEM_PROMPT = 100_000
MAX_LIST = 1000


def clean_title(title: str | None) -> str:
    if title is None:
        return DEFAULT_TITLE
    if not isinstance(title, str):
        raise InvalidRequestError("the title must be a string", param="title")
    title = " ".join(clean_text(title).split())
    if len(title) > MAX_TITLE:
        raise InvalidRequestError(f"the title is over {MAX_TITLE} characters", param="title")
    return title or DEFAULT_TITLE


def clean_system_prompt(prompt: str | None) -> str | None:
    if prompt is None:
        return None
    if not isinstance(prompt, str) or len(prompt) > MAX_SYSTEM_PROMPT:
        raise InvalidRequestError(
            f"the system prompt must be a string of at most {MAX_SYSTEM_PROMPT} characters",
            param="system_prompt",
        )
    return clean_text(prompt)


class ConversationRepo(Repository):
    def create(
        self,
        user_id: int,
        title: str | None = None,
        *,
        system_prompt: str | None = None,
        settings: dict[str, Any] | None = None,
    ) -> ConversationRecord:
        """A new, empty conversation. ``settings`` holds the model, sampling and thinking
        choices as a JSON object (the chat service gives it meaning)."""
        row = Conversation(
            id=str(uuid.uuid4()),
            user_id=user_id,
            title=clean_title(title),
            system_prompt=clean_system_prompt(system_prompt),
            settings=json_object(settings or {}, "settings"),
        )
        with self.db.write() as s:
            if s.get(User, user_id) is None:
                raise NotFoundError(f"user {user_id!r} not found", param="user")
            s.add(row)
            s.flush()
            return ConversationRecord.of(row)

    def get(self, user_id: int, conversation_id: str) -> ConversationRecord:
        with self.db.read() as s:
            return ConversationRecord.of(owned_conversation(s, user_id, conversation_id))

    def list_for(
        self, user_id: int, *, limit: int = 100, offset: int = 0
    ) -> list[ConversationRecord]:
        """The user's conversations: pinned first, then most recently updated."""
        limit = max(0, min(int(limit), MAX_LIST))
        query = (
            select(Conversation)
            .where(Conversation.user_id == user_id)
            .order_by(Conversation.pinned.desc(), Conversation.updated_at.desc(), Conversation.id)
            .limit(limit)
            .offset(max(0, int(offset)))
        )
        with self.db.read() as s:
            return [ConversationRecord.of(r) for r in s.scalars(query)]

    def count_for(self, user_id: int) -> int:
        with self.db.read() as s:
            query = select(func.count()).where(Conversation.user_id == user_id)
            return int(s.scalar(query) or 0)

    def rename(self, user_id: int, conversation_id: str, title: str) -> ConversationRecord:
        return self._update(user_id, conversation_id, touch=True, title=clean_title(title))

    def set_pinned(
        self, user_id: int, conversation_id: str, pinned: bool = True
    ) -> ConversationRecord:
        return self._update(user_id, conversation_id, touch=False, pinned=bool(pinned))

    def pin(self, user_id: int, conversation_id: str) -> ConversationRecord:
        return self.set_pinned(user_id, conversation_id, True)

    def unpin(self, user_id: int, conversation_id: str) -> ConversationRecord:
        return self.set_pinned(user_id, conversation_id, False)

    def set_settings(
        self, user_id: int, conversation_id: str, settings: dict[str, Any]
    ) -> ConversationRecord:
        """Replace the settings object (model, sampling, thinking ...)."""
        clean = json_object(settings, "settings")
        return self._update(user_id, conversation_id, touch=True, settings=clean)

    def set_system_prompt(
        self, user_id: int, conversation_id: str, system_prompt: str | None
    ) -> ConversationRecord:
        clean = clean_system_prompt(system_prompt)
        return self._update(user_id, conversation_id, touch=True, system_prompt=clean)

    def delete(self, user_id: int, conversation_id: str) -> None:
        """Delete the conversation and all its messages."""
        with self.db.write() as s:
            result = s.execute(
                delete(Conversation).where(
                    Conversation.id == str(conversation_id), Conversation.user_id == user_id
                )
            )
            if rowcount(result) == 0:
                raise conversation_not_found(conversation_id)

    def _update(
        self, user_id: int, conversation_id: str, *, touch: bool, **values: Any
    ) -> ConversationRecord:
        with self.db.write() as s:
            row = owned_conversation(s, user_id, conversation_id)
            for name, value in values.items():
                setattr(row, name, value)
            if touch:
                row.updated_at = utcnow()
            s.flush()
            return ConversationRecord.of(row)
