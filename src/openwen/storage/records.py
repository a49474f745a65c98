"""Plain frozen records that repositories return (never live ORM objects, so nothing lazy-loads
or expires after its session closed). Secrets and password hashes are never part of a record."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from openwen.messages import Message, Role, ToolCall
from openwen.storage import models

if TYPE_CHECKING:
    from openwen.storage.feedback import FeedbackRecord

Status = Literal["complete", "streaming", "incomplete", "error"]


@dataclass(frozen=True)
class UserRecord:
    id: int
    username: str
    is_admin: bool
    disabled: bool
    has_password: bool
    created_at: datetime

    @classmethod
    def of(cls, row: models.User) -> UserRecord:
        return cls(
            id=row.id,
            username=row.username,
            is_admin=row.is_admin,
            disabled=row.disabled,
            has_password=row.password_hash is not None,
            created_at=row.created_at,
        )


@dataclass(frozen=True)
class ApiKeyRecord:
    id: int
    user_id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    scopes: tuple[str, ...] = ("inference",)

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @classmethod
    def of(cls, row: models.ApiKey) -> ApiKeyRecord:
        return cls(
            id=row.id,
            user_id=row.user_id,
            name=row.name,
            prefix=row.prefix,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
            scopes=tuple(s for s in (row.scopes or "").split(",") if s),
        )


@dataclass(frozen=True)
class NewApiKey:
    """A freshly created key. ``secret`` is shown to the user once and never stored."""

    key: ApiKeyRecord
    secret: str


@dataclass(frozen=True)
class LoginSessionRecord:
    user_id: int
    csrf_token: str
    created_at: datetime
    expires_at: datetime

    @classmethod
    def of(cls, row: models.LoginSession) -> LoginSessionRecord:
        return cls(
            user_id=row.user_id,
            csrf_token=row.csrf_token,
            created_at=row.created_at,
            expires_at=row.expires_at,
        )


@dataclass(frozen=True)
class NewLoginSession:
    """A fresh login. ``token`` goes into the cookie; only its sha256 is stored."""

    token: str
    session: LoginSessionRecord


@dataclass(frozen=True)
class ConversationRecord:
    id: str
    user_id: int
    title: str
    pinned: bool
    system_prompt: str | None
    settings: dict[str, Any]
    current_leaf_id: int | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: models.Conversation) -> ConversationRecord:
        return cls(
            id=row.id,
            user_id=row.user_id,
            title=row.title,
            pinned=row.pinned,
            system_prompt=row.system_prompt,
            settings=dict(row.settings or {}),
            current_leaf_id=row.current_leaf_id,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@dataclass(frozen=True)
class MessageRecord:
    id: int
    conversation_id: str
    parent_id: int | None
    role: Role
    content: str
    reasoning: str
    tool_calls: tuple[ToolCall, ...]
    tool_call_id: str | None
    status: Status
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: models.Message) -> MessageRecord:
        return cls(
            id=row.id,
            conversation_id=row.conversation_id,
            parent_id=row.parent_id,
            role=row.role,  # type: ignore[arg-type]  # guarded by a CHECK constraint
            content=row.content,
            reasoning=row.reasoning,
            tool_calls=tool_calls_from_json(row.tool_calls),
            tool_call_id=row.tool_call_id,
            status=row.status,  # type: ignore[arg-type]  # guarded by a CHECK constraint
            metadata=dict(row.meta or {}),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    def to_message(self) -> Message:
        """The chat-layer value type (what a prompt is built from)."""
        return Message(
            role=self.role,
            content=self.content,
            reasoning=self.reasoning or None,
            tool_calls=self.tool_calls,
            tool_call_id=self.tool_call_id,
        )


@dataclass(frozen=True)
class ThreadEntry:
    """A message on a branch path with the ids of it and its siblings (oldest first), for
    "< 2/3 >" branch switching."""

    message: MessageRecord
    sibling_ids: tuple[int, ...]
    feedback: FeedbackRecord | None = None  # the owner's rating / edit of an answer

    @property
    def branch_index(self) -> int:
        return self.sibling_ids.index(self.message.id)


@dataclass(frozen=True)
class SearchHit:
    """One conversation matching a search. ``snippet`` is plain text; ``highlights`` are
    ``(start, end)`` character spans in it to emphasise (escape the text, then mark the spans)."""

    conversation_id: str
    title: str
    snippet: str
    highlights: tuple[tuple[int, int], ...]
    message_id: int | None
    score: float


def tool_calls_to_json(calls: tuple[ToolCall, ...] | list[ToolCall] | None) -> list[dict] | None:
    if not calls:
        return None
    clean = _no_nul
    return [
        {"id": clean(c.id), "name": clean(c.name), "arguments": clean(c.arguments)} for c in calls
    ]


def _no_nul(text: str) -> str:
    return str(text).replace("\x00", "\ufffd")


def tool_calls_from_json(data: list[dict[str, Any]] | None) -> tuple[ToolCall, ...]:
    if not data:
        return ()
    return tuple(
        ToolCall(id=str(c["id"]), name=str(c["name"]), arguments=str(c["arguments"])) for c in data
    )
