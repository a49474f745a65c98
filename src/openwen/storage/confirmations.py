"""Open tool confirmations in the database, so that any instance can answer one.

An answer waiting for the user's yes or no (:class:`~openwen.chat.turn_tools.Confirmations`)
records its question here: its key, whose it is, and the answer message. Behind a load balancer
the user's ``POST /api/tool-confirmations/{id}`` may reach another instance than the one
writing the answer; that instance finds the question here and records the decision, which the
waiting instance reads (it polls while it waits). Rows are removed when the question ends.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, delete, select, update
from sqlalchemy.orm import Mapped, mapped_column

from openwen.storage.base import Repository, rowcount, utcnow
from openwen.storage.models import Base


class ToolConfirmation(Base):
    """A tool call an answer waits on: ``approved`` is None until someone decides."""

    __tablename__ = "tool_confirmations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[int] = mapped_column(Integer)
    approved: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConfirmationRepo(Repository):
    def open(self, key: str, user_id: int, message_id: int) -> None:
        """Record the open question ``key`` of ``user_id``'s answer ``message_id``."""
        with self.db.write() as s:
            s.add(ToolConfirmation(id=key, user_id=user_id, message_id=message_id))

    def answer(self, user_id: int, key: str, approved: bool) -> int | None:
        """Decide the open question ``key`` of ``user_id``: the answer's message id, or None
        when there is no such open question of this user (decided, ended, or someone else's)."""
        with self.db.write() as s:
            result = s.execute(
                update(ToolConfirmation)
                .where(ToolConfirmation.id == key, ToolConfirmation.user_id == user_id,
                       ToolConfirmation.approved.is_(None))
                .values(approved=bool(approved))
            )
            if not rowcount(result):
                return None
            return s.scalar(select(ToolConfirmation.message_id).where(ToolConfirmation.id == key))

    def decision(self, key: str) -> bool | None:
        """The decision recorded for ``key`` (None: not decided yet, or no such question)."""
        with self.db.read() as s:
            return s.scalar(select(ToolConfirmation.approved).where(ToolConfirmation.id == key))

    def close(self, key: str) -> None:
        with self.db.write() as s:
            s.execute(delete(ToolConfirmation).where(ToolConfirmation.id == key))
