"""Stored responses of the OpenAI Responses API, per owner.

The owner is a user id, or ``None`` for the keyless local API (loopback without API keys); each
owner reaches only their own rows, and another owner's id reads exactly like a missing one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, select

from openwen.errors import NotFoundError
from openwen.storage.base import Repository, rowcount, utcnow
from openwen.storage.response_models import StoredResponse

MAX_CHAIN = 1000  # previous_response_id links followed at most
UNFINISHED = ("queued", "in_progress")


@dataclass(frozen=True)
class ResponseRecord:
    id: str
    user_id: int | None
    previous_response_id: str | None
    status: str
    background: bool
    input_items: list[Any]
    body: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, row: StoredResponse) -> ResponseRecord:
        return cls(row.id, row.user_id, row.previous_response_id, row.status, row.background,
                   list(row.input_items or []), dict(row.body or {}), row.created_at)


def response_not_found(response_id: object) -> NotFoundError:
    return NotFoundError(f"no response with id {response_id!r}", param="response_id")


def _owned(owner: int | None) -> ColumnElement[bool]:
    return (StoredResponse.user_id.is_(None) if owner is None
            else StoredResponse.user_id == owner)


class ResponseRepo(Repository):
    def save(self, owner: int | None, response_id: str, *, status: str, body: dict[str, Any],
             input_items: list[Any] | None = None, previous_response_id: str | None = None,
             background: bool = False) -> None:
        """Insert the response, or update its status and body (``input_items`` only on insert)."""
        with self.db.write() as s:
            row = s.get(StoredResponse, response_id)
            if row is None:
                s.add(StoredResponse(
                    id=response_id, user_id=owner, previous_response_id=previous_response_id,
                    status=status, background=background, input_items=input_items or [],
                    body=body))
            elif row.user_id == owner:
                row.status, row.body, row.updated_at = status, body, utcnow()
            else:
                raise response_not_found(response_id)

    def get(self, owner: int | None, response_id: str) -> ResponseRecord:
        with self.db.read() as s:
            row = s.scalar(select(StoredResponse).where(
                StoredResponse.id == str(response_id), _owned(owner)))
            if row is None:
                raise response_not_found(response_id)
            return ResponseRecord.of(row)

    def delete(self, owner: int | None, response_id: str) -> None:
        with self.db.write() as s:
            result = s.execute(delete(StoredResponse).where(
                StoredResponse.id == str(response_id), _owned(owner)))
            if rowcount(result) == 0:
                raise response_not_found(response_id)

    def chain(self, owner: int | None, response_id: str) -> list[ResponseRecord]:
        """The response and every one before it (``previous_response_id``), oldest first."""
        out: list[ResponseRecord] = []
        seen: set[str] = set()
        current: str | None = response_id
        with self.db.read() as s:
            while current is not None and current not in seen and len(out) < MAX_CHAIN:
                seen.add(current)
                row = s.scalar(select(StoredResponse).where(
                    StoredResponse.id == current, _owned(owner)))
                if row is None:
                    raise response_not_found(current)
                out.append(ResponseRecord.of(row))
                current = row.previous_response_id
        out.reverse()
        return out

    def purge_before(self, cutoff: datetime) -> int:
        """Delete every response created before ``cutoff`` (the retention setting)."""
        with self.db.write() as s:
            return rowcount(s.execute(delete(StoredResponse).where(
                StoredResponse.created_at < cutoff)))

    def recover_interrupted(self, message: str) -> int:
        """Mark responses a stopped process left queued or in progress as failed."""
        count = 0
        with self.db.write() as s:
            rows = s.scalars(select(StoredResponse).where(
                StoredResponse.status.in_(UNFINISHED))).all()
            for row in rows:
                body = dict(row.body or {})
                body.update(status="failed",
                            error={"code": "server_error", "message": message})
                row.status, row.body, row.updated_at = "failed", body, utcnow()
                count += 1
        return count
