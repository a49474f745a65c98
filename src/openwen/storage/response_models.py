"""ORM model of stored OpenAI Responses API responses; mirrored by migration ``0200_responses``.

``api_responses``: one response of ``POST /v1/responses`` made with ``store`` on. ``user_id`` is
the API key's user (NULL for the keyless local API on loopback); another owner's rows behave as
missing ones. ``input_items`` are the items this request added (the ``input_items`` endpoint);
``body`` is the whole Response object as last rendered (its ``output`` items continue a chain of
``previous_response_id``). Rows older than the retention setting are deleted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from openwen.storage.models import Base, utcnow

__all__ = ["StoredResponse"]

JSONList = JSON().with_variant(JSONB(), "postgresql")


class StoredResponse(Base):
    __tablename__ = "api_responses"
    __table_args__ = (Index("ix_api_responses_user_created", "user_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    previous_response_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    background: Mapped[bool] = mapped_column(Boolean, default=False)
    input_items: Mapped[list[Any]] = mapped_column(JSONList, default=list)
    body: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
