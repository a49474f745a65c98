"""Export a conversation (Markdown for reading, JSON for keeping) and import the JSON back.

JSON export, ``{"format": "openwen.conversation", "version": 1, ...}``:

- ``conversation``: title, pinned, system_prompt, settings, timestamps, current_leaf_id;
- ``current_branch``: the messages of the branch on screen, root first;
- ``tree``: every message (``id`` / ``parent_id`` link them), parents before children.

Message objects carry role, content, reasoning, OpenAI-shaped ``tool_calls``, tool_call_id, status,
metadata and timestamps. Import reads ``tree`` (or, without one, ``current_branch`` as a plain
chain), checks everything first and writes in one transaction: a bad file raises
``InvalidRequestError`` and stores nothing. The import is a new conversation of the importing
user, with new ids.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from openwen.errors import InvalidRequestError, NotFoundError
from openwen.storage.base import Repository, clean_text, json_object, utcnow
from openwen.storage.conversations import ConversationRepo, clean_system_prompt, clean_title
from openwen.storage.export_schema import FORMAT, VERSION, ExportIn, Node, insertion_order
from openwen.storage.messages import MessageRepo
from openwen.storage.models import Conversation, Message, User
from openwen.storage.records import ConversationRecord, MessageRecord

MAX_IMPORT_MESSAGES = 20_000


def message_json(m: MessageRecord) -> dict[str, Any]:
    return {
        "id": m.id,
        "parent_id": m.parent_id,
        "role": m.role,
        "content": m.content,
        "reasoning": m.reasoning,
        "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in m.tool_calls
        ]
        or None,
        "tool_call_id": m.tool_call_id,
        "status": m.status,
        "metadata": m.metadata,
        "created_at": m.created_at.isoformat(),
        "updated_at": m.updated_at.isoformat(),
    }


class TransferRepo(Repository):
    def export_json(self, user_id: int, conversation_id: str) -> dict[str, Any]:
        conversation = ConversationRepo(self.db).get(user_id, conversation_id)
        messages = MessageRepo(self.db)
        return {
            "format": FORMAT,
            "version": VERSION,
            "exported_at": utcnow().isoformat(),
            "conversation": {
                "id": conversation.id,
                "title": conversation.title,
                "pinned": conversation.pinned,
                "system_prompt": conversation.system_prompt,
                "settings": conversation.settings,
                "current_leaf_id": conversation.current_leaf_id,
                "created_at": conversation.created_at.isoformat(),
                "updated_at": conversation.updated_at.isoformat(),
            },
            "current_branch": [message_json(m) for m in messages.path(user_id, conversation.id)],
            "tree": [message_json(m) for m in messages.tree(user_id, conversation.id)],
        }

    def export_markdown(self, user_id: int, conversation_id: str) -> str:
        """The current branch as a readable Markdown document."""
        from openwen.storage.markdown import render_markdown

        conversation = ConversationRepo(self.db).get(user_id, conversation_id)
        path = MessageRepo(self.db).path(user_id, conversation.id)
        return render_markdown(conversation, path)

    def import_json(self, user_id: int, data: str | bytes | dict[str, Any]) -> ConversationRecord:
        """Create a new conversation for ``user_id`` from an export; all or nothing."""
        export = parse_export(data)
        nodes = export.nodes()
        if len(nodes) > MAX_IMPORT_MESSAGES:
            raise InvalidRequestError(
                f"the conversation has over {MAX_IMPORT_MESSAGES} messages", param="tree"
            )
        order = insertion_order(nodes)
        leaf_key = export.leaf_key(nodes)
        now = utcnow()
        head = export.conversation
        conversation = Conversation(
            id=str(uuid.uuid4()),
            user_id=user_id,
            title=clean_title(head.title),
            pinned=head.pinned,
            system_prompt=clean_system_prompt(head.system_prompt),
            settings=json_object(head.settings, "settings"),
            created_at=_utc(head.created_at) or now,
            updated_at=now,
        )
        with self.db.write() as s:
            if s.get(User, user_id) is None:
                raise NotFoundError(f"user {user_id!r} not found", param="user")
            s.add(conversation)
            s.flush()
            new_ids: dict[str, int] = {}
            for index in order:
                row = _message_row(conversation.id, nodes[index], new_ids, now)
                s.add(row)
                s.flush()
                new_ids[nodes[index].key] = row.id
            conversation.current_leaf_id = new_ids[leaf_key] if leaf_key is not None else None
            s.flush()
            return ConversationRecord.of(conversation)


def _message_row(
    conversation_id: str, node: Node, new_ids: dict[str, int], now: datetime
) -> Message:
    m = node.message
    created = _utc(m.created_at) or now
    return Message(
        conversation_id=conversation_id,
        parent_id=None if node.parent_key is None else new_ids[node.parent_key],
        role=m.role,
        content=clean_text(m.content or ""),
        reasoning=clean_text(m.reasoning or ""),
        tool_calls=m.tool_calls_json(),
        tool_call_id=None if m.tool_call_id is None else clean_text(m.tool_call_id),
        status="incomplete" if m.status == "streaming" else m.status,
        meta=m.metadata,
        created_at=created,
        updated_at=_utc(m.updated_at) or created,
    )


def parse_export(data: str | bytes | dict[str, Any]) -> ExportIn:
    """Parse and validate an export; any problem is an ``InvalidRequestError``."""
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidRequestError(
                f"the file is not JSON: {exc}", code="invalid_export"
            ) from exc
    if not isinstance(data, dict):
        raise InvalidRequestError("an export is a JSON object", code="invalid_export")
    try:
        return ExportIn.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'export'}: {err['msg']}"
            for err in exc.errors()[:5]
        )
        raise InvalidRequestError(
            f"not a valid openwen conversation export: {problems}", code="invalid_export"
        ) from exc


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
