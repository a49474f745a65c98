"""What a user thinks of an answer: thumbs up/down, and an edited version they prefer.

One row per (answer, user) in ``message_feedback``: ``rating`` is ``good``, ``bad`` or None, and
``edited_content`` is the user's own version of the answer (None: not edited). The original
answer stays in ``messages.content`` untouched; the edited text is what the web app shows and
what a dataset built from conversations (:mod:`openwen.tune.conversations`) learns from. A row
whose rating and edit are both cleared is deleted. Only the conversation's owner reaches a
message: another user's message is reported as missing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from openwen.errors import InvalidRequestError
from openwen.storage.base import Repository, clean_text, owned_message, utcnow
from openwen.storage.models import Base, Conversation, Message
from openwen.storage.records import MessageRecord

RATINGS = ("good", "bad")
MAX_EDIT_CHARS = 200_000


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


class MessageFeedback(Base):
    __tablename__ = "message_feedback"
    __table_args__ = (CheckConstraint(f"rating IN {RATINGS!r}", name="rating"),)

    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    rating: Mapped[str | None] = mapped_column(String(8))
    edited_content: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


@dataclass(frozen=True)
class FeedbackRecord:
    message_id: int
    rating: str | None
    edited_content: str | None
    updated_at: datetime

    @classmethod
    def of(cls, row: MessageFeedback) -> FeedbackRecord:
        return cls(message_id=row.message_id, rating=row.rating,
                   edited_content=row.edited_content, updated_at=row.updated_at)

    def to_json(self) -> dict[str, object]:
        return {"rating": self.rating, "edited_content": self.edited_content,
                "updated_at": self.updated_at.isoformat()}


def _check_rating(rating: object) -> str | None:
    if rating is not None and rating not in RATINGS:
        raise InvalidRequestError("rating must be 'good', 'bad' or null", param="rating")
    return rating  # type: ignore[return-value]


def _check_edit(text: object, original: str) -> str | None:
    if text is None:
        return None
    if not isinstance(text, str) or not text.strip():
        raise InvalidRequestError("the edited answer must be non-empty text (null removes the "
                                  "edit)", param="edited_content")
    if len(text) > MAX_EDIT_CHARS:
        raise InvalidRequestError(f"the edited answer is longer than {MAX_EDIT_CHARS} "
                                  "characters", param="edited_content")
    text = clean_text(text)
    return None if text == original else text  # the same text again is no edit


class FeedbackRepo(Repository):
    """Ratings and edits of the answers in a user's own conversations."""

    def set(self, user_id: int, message_id: int, *, rating: str | None | _Unset = UNSET,
            edited_content: str | None | _Unset = UNSET) -> FeedbackRecord | None:
        """Change the rating and/or the edit (a field left UNSET stays); None when nothing is
        left (the row is removed). Only a finished assistant answer can be rated or edited."""
        with self.db.write() as s:
            message = owned_message(s, user_id, message_id)
            if message.role != "assistant" or message.status == "streaming":
                raise InvalidRequestError("only a finished assistant answer can be rated or "
                                          "edited", param="message_id")
            if message.tool_calls and not isinstance(edited_content, _Unset):
                raise InvalidRequestError("a step that called tools cannot be edited",
                                          param="message_id")
            new_rating = None if isinstance(rating, _Unset) else _check_rating(rating)
            new_edit = (None if isinstance(edited_content, _Unset)
                        else _check_edit(edited_content, message.content))
            row = s.get(MessageFeedback, (message.id, user_id))
            now = utcnow()
            if row is None:
                row = MessageFeedback(message_id=message.id, user_id=user_id, created_at=now)
                s.add(row)
            if not isinstance(rating, _Unset):
                row.rating = new_rating
            if not isinstance(edited_content, _Unset):
                row.edited_content = new_edit
            row.updated_at = now
            if row.rating is None and row.edited_content is None:
                if row in s.new:
                    s.expunge(row)
                else:
                    s.delete(row)
                return None
            s.flush()
            return FeedbackRecord.of(row)

    def get(self, user_id: int, message_id: int) -> FeedbackRecord | None:
        with self.db.read() as s:
            owned_message(s, user_id, message_id)
            row = s.get(MessageFeedback, (message_id, user_id))
            return FeedbackRecord.of(row) if row is not None else None

    def rated(self, user_id: int, *, good: bool = True, edited: bool = True
              ) -> list[tuple[MessageRecord, FeedbackRecord]]:
        """The user's answers rated good (with ``good``) and/or edited (with ``edited``),
        oldest first; answers rated bad never count, edited or not."""
        with self.db.read() as s:
            query = (
                select(Message, MessageFeedback)
                .join(MessageFeedback, MessageFeedback.message_id == Message.id)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .where(MessageFeedback.user_id == user_id, Conversation.user_id == user_id)
                .order_by(Message.id)
            )
            out = []
            for message, fb in s.execute(query).all():
                if fb.rating == "bad":
                    continue
                if (good and fb.rating == "good") or (edited and fb.edited_content is not None):
                    out.append((MessageRecord.of(message), FeedbackRecord.of(fb)))
            return out


def feedback_of(s: Session, user_id: int, message_ids: Iterable[int]
                ) -> dict[int, FeedbackRecord]:
    """The feedback rows of ``message_ids`` (inside an open session ``s``)."""
    ids = list(message_ids)
    if not ids:
        return {}
    query = select(MessageFeedback).where(MessageFeedback.user_id == user_id,
                                          MessageFeedback.message_id.in_(ids))
    return {row.message_id: FeedbackRecord.of(row) for row in s.scalars(query)}
