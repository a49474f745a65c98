"""Request bodies of the web app's JSON API, and the JSON shapes of stored records."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from openwen.storage import (
    ApiKeyRecord,
    ConversationRecord,
    MessageRecord,
    SearchHit,
    ThreadEntry,
    UserRecord,
)
from openwen.storage.feedback import FeedbackRecord


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Credentials(Body):
    username: str = Field(max_length=200)
    password: str = Field(max_length=2048)


class PasswordChange(Body):
    current_password: str = Field(max_length=2048)
    new_password: str = Field(max_length=2048)


class NewUser(Credentials):
    is_admin: bool = False


class UserChange(Body):
    disabled: bool | None = None
    is_admin: bool | None = None


class Registration(Body):
    open: bool


class ConversationSettings(Body):
    """Generation settings of one conversation; None means the model's default."""

    model: str | None = Field(default=None, max_length=500)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    thinking: bool | None = None
    # tools (built-ins, MCP, remember) for this conversation's answers; None means on
    tools: bool | None = None
    # the document collection the answers draw sources from (documents attached to the
    # conversation are always used)
    collection: str | None = Field(default=None, min_length=1, max_length=100)


class NewConversation(Body):
    title: str | None = Field(default=None, max_length=500)
    system_prompt: str | None = Field(default=None, max_length=100_000)
    settings: ConversationSettings = Field(default_factory=lambda: ConversationSettings())


class ConversationChange(Body):
    """Fields to change; a field left out stays as it is (``system_prompt: null`` clears)."""

    title: str | None = Field(default=None, max_length=500)
    pinned: bool | None = None
    system_prompt: str | None = Field(default=None, max_length=100_000)
    settings: ConversationSettings | None = None


class NewMessage(Body):
    content: str
    # the message this one answers or follows; left out: the conversation's current leaf
    parent_id: int | None = None


class Edit(Body):
    content: str


class ToolConfirmation(Body):
    approve: bool


class NewKey(Body):
    name: str = Field(max_length=200)
    scopes: list[str] = Field(default=["inference"], max_length=10,
                              description="inference (call the API), tools (server-side tools)")


class UserSettings(Body):
    """The user's own preferences: ``ui.*`` keys (theme, defaults for new chats)."""

    values: dict[str, Any]


# -- records as JSON ------------------------------------------------------------------------------


def user_json(user: UserRecord) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "is_admin": user.is_admin,
        "disabled": user.disabled,
        "created_at": user.created_at.isoformat(),
    }


def conversation_json(c: ConversationRecord) -> dict[str, Any]:
    return {
        "id": c.id,
        "title": c.title,
        "pinned": c.pinned,
        "system_prompt": c.system_prompt,
        "settings": c.settings,
        "current_leaf_id": c.current_leaf_id,
        "created_at": c.created_at.isoformat(),
        "updated_at": c.updated_at.isoformat(),
    }


def conversation_summary(c: ConversationRecord) -> dict[str, Any]:
    return {
        "id": c.id,
        "title": c.title,
        "pinned": c.pinned,
        "updated_at": c.updated_at.isoformat(),
    }


def message_json(m: MessageRecord, sibling_ids: tuple[int, ...] | None = None, *,
                 feedback: FeedbackRecord | None | bool = False) -> dict[str, Any]:
    """A message as JSON; ``feedback`` (the owner's rating and edit, None for none) is added
    when given."""
    out: dict[str, Any] = {
        "id": m.id,
        "conversation_id": m.conversation_id,
        "parent_id": m.parent_id,
        "role": m.role,
        "content": m.content,
        "reasoning": m.reasoning,
        "tool_calls": [
            {"id": c.id, "name": c.name, "arguments": c.arguments} for c in m.tool_calls
        ],
        "tool_call_id": m.tool_call_id,
        "status": m.status,
        "metadata": m.metadata,
        "created_at": m.created_at.isoformat(),
        "updated_at": m.updated_at.isoformat(),
    }
    if sibling_ids is not None:
        out["sibling_ids"] = list(sibling_ids)
    if feedback is not False and m.role == "assistant":
        out["feedback"] = feedback.to_json() if isinstance(feedback, FeedbackRecord) else None
    return out


def thread_json(entries: list[ThreadEntry]) -> list[dict[str, Any]]:
    return [message_json(e.message, e.sibling_ids, feedback=e.feedback) for e in entries]


def key_json(k: ApiKeyRecord) -> dict[str, Any]:
    return {
        "id": k.id,
        "name": k.name,
        "prefix": k.prefix,
        "created_at": k.created_at.isoformat(),
        "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
        "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
        "scopes": list(k.scopes),
    }


def hit_json(h: SearchHit) -> dict[str, Any]:
    return {
        "conversation_id": h.conversation_id,
        "title": h.title,
        "snippet": h.snippet,
        "highlights": [list(span) for span in h.highlights],
        "message_id": h.message_id,
    }
