"""What every repository shares: the database handle and ownership-checked lookups.

Ownership rule: every user-facing method takes ``user_id`` and reaches rows only through it. A row
that exists but belongs to someone else is reported exactly like a missing one (``NotFoundError``
with the same message), so ids of other users' data cannot even be probed.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Result, select
from sqlalchemy.orm import Session

from openwen.errors import InvalidRequestError, NotFoundError
from openwen.storage.db import Database
from openwen.storage.models import Conversation, Message, utcnow

__all__ = [
    "Repository",
    "utcnow",
    "owned_conversation",
    "owned_message",
    "json_object",
    "rowcount",
    "clean_text",
    "plain_json",
]


class Repository:
    def __init__(self, db: Database) -> None:
        self.db = db


def conversation_not_found(conversation_id: object) -> NotFoundError:
    return NotFoundError(f"conversation {conversation_id!r} not found", param="conversation_id")


def message_not_found(message_id: object) -> NotFoundError:
    return NotFoundError(f"message {message_id!r} not found", param="message_id")


def owned_conversation(session: Session, user_id: int, conversation_id: str) -> Conversation:
    row = session.scalar(
        select(Conversation).where(
            Conversation.id == str(conversation_id), Conversation.user_id == user_id
        )
    )
    if row is None:
        raise conversation_not_found(conversation_id)
    return row


def owned_message(session: Session, user_id: int, message_id: int) -> Message:
    if not isinstance(message_id, int) or isinstance(message_id, bool):
        raise message_not_found(message_id)
    row = session.scalar(
        select(Message)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Message.id == message_id, Conversation.user_id == user_id)
    )
    if row is None:
        raise message_not_found(message_id)
    return row


def rowcount(result: Result[Any]) -> int:
    """Rows a DML statement touched."""
    return int(getattr(result, "rowcount", 0))


def clean_text(text: str) -> str:
    """Text as stored: NUL characters (which PostgreSQL cannot store) become U+FFFD."""
    return text.replace("\x00", "\ufffd")


def plain_json(value: Any) -> Any:
    """``value`` as plain JSON data; ValueError/TypeError when it is not storable as JSON
    (NaN or infinity, non-JSON types, NUL characters)."""
    dumped = json.dumps(value, allow_nan=False)
    if "\\u0000" in dumped:
        raise ValueError("NUL characters cannot be stored")
    return json.loads(dumped)


def json_object(value: Any, param: str) -> dict[str, Any]:
    """Check that ``value`` is a JSON object (a dict that round-trips through JSON)."""
    if not isinstance(value, dict):
        raise InvalidRequestError(f"{param} must be a JSON object", param=param)
    try:
        return dict(plain_json(value))
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(f"{param} is not JSON-serialisable: {exc}", param=param) from exc
