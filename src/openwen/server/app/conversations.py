"""Conversations of the signed-in user: list, create, read, change, delete, search, export,
import. Another user's conversation answers exactly like a missing one (404)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from openwen.server.app.schemas import (
    ConversationChange,
    NewConversation,
    conversation_json,
    conversation_summary,
    hit_json,
    thread_json,
)
from openwen.server.app.security import CurrentViewer
from openwen.server.app.state import State, WebState

router = APIRouter(prefix="/api", tags=["web app: conversations"])


@router.get("/conversations", summary="Your conversations: pinned first, then most recent")
async def list_conversations(
    current: CurrentViewer,
    state: State,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    repo = state.storage.conversations
    rows = await run_in_threadpool(
        lambda: repo.list_for(current.user.id, limit=limit, offset=offset)
    )
    total = await run_in_threadpool(repo.count_for, current.user.id)
    return {"conversations": [conversation_summary(c) for c in rows], "total": total}


@router.post("/conversations", status_code=201, summary="Start a conversation")
async def create_conversation(
    body: NewConversation, current: CurrentViewer, state: State
) -> dict[str, Any]:
    settings = body.settings.model_dump(exclude_none=True)
    conversation = await run_in_threadpool(
        lambda: state.storage.conversations.create(
            current.user.id, body.title, system_prompt=body.system_prompt, settings=settings
        )
    )
    return {"conversation": conversation_json(conversation), "messages": []}


async def _full(state: WebState, user_id: int, conversation_id: str) -> dict[str, Any]:
    def load() -> dict[str, Any]:
        conversation = state.storage.conversations.get(user_id, conversation_id)
        thread = state.storage.messages.thread(user_id, conversation.id)
        return {"conversation": conversation_json(conversation), "messages": thread_json(thread)}

    return await run_in_threadpool(load)


@router.get(
    "/conversations/{conversation_id}",
    summary="A conversation and the messages of its current branch",
)
async def get_conversation(
    conversation_id: str, current: CurrentViewer, state: State
) -> dict[str, Any]:
    return await _full(state, current.user.id, conversation_id)


@router.patch(
    "/conversations/{conversation_id}",
    summary="Rename, pin, or change the system prompt or settings",
)
async def change_conversation(
    conversation_id: str,
    body: ConversationChange,
    current: CurrentViewer,
    state: State,
) -> dict[str, Any]:
    repo = state.storage.conversations
    given = body.model_fields_set
    user_id = current.user.id

    def change() -> Any:
        conversation = repo.get(user_id, conversation_id)
        if "title" in given:
            conversation = repo.rename(user_id, conversation.id, body.title or "")
        if "pinned" in given and body.pinned is not None:
            conversation = repo.set_pinned(user_id, conversation.id, body.pinned)
        if "system_prompt" in given:
            conversation = repo.set_system_prompt(user_id, conversation.id, body.system_prompt)
        if "settings" in given:
            settings = body.settings.model_dump(exclude_none=True) if body.settings else {}
            conversation = repo.set_settings(user_id, conversation.id, settings)
        return conversation

    return {"conversation": conversation_json(await run_in_threadpool(change))}


@router.delete("/conversations/{conversation_id}", summary="Delete a conversation")
async def delete_conversation(
    conversation_id: str, current: CurrentViewer, state: State
) -> dict[str, Any]:
    user_id = current.user.id
    await run_in_threadpool(state.storage.conversations.get, user_id, conversation_id)
    for turn in state.chat.running_in(user_id, conversation_id):
        turn.stop()
        await turn.wait()
    await run_in_threadpool(state.storage.conversations.delete, user_id, conversation_id)
    return {"ok": True}


@router.get("/search", summary="Full-text search over your conversations")
async def search(
    current: CurrentViewer,
    state: State,
    q: Annotated[str, Query(max_length=1000)] = "",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    hits = await run_in_threadpool(
        lambda: state.storage.search.search(current.user.id, q, limit=limit)
    )
    return {"results": [hit_json(h) for h in hits]}


def download_name(title: str, extension: str) -> str:
    """A Content-Disposition value: an ASCII fallback and the UTF-8 title."""
    ascii_name = re.sub(r"[^A-Za-z0-9._-]+", "-", title).strip("-")[:80] or "conversation"
    utf8 = quote(f"{title[:120]}.{extension}", safe="")
    return f"attachment; filename=\"{ascii_name}.{extension}\"; filename*=UTF-8''{utf8}"


@router.get(
    "/conversations/{conversation_id}/export",
    summary="Download a conversation as Markdown (for reading) or JSON (for import)",
)
async def export(
    conversation_id: str,
    current: CurrentViewer,
    state: State,
    format: Literal["markdown", "json"] = "markdown",
) -> Response:
    user_id = current.user.id
    transfer = state.storage.transfer
    conversation = await run_in_threadpool(
        state.storage.conversations.get, user_id, conversation_id
    )
    if format == "json":
        import json

        data = await run_in_threadpool(transfer.export_json, user_id, conversation.id)
        body = json.dumps(data, ensure_ascii=False, indent=2)
        media, extension = "application/json", "json"
    else:
        body = await run_in_threadpool(transfer.export_markdown, user_id, conversation.id)
        media, extension = "text/markdown; charset=utf-8", "md"
    headers = {"Content-Disposition": download_name(conversation.title, extension)}
    return Response(body.encode("utf-8"), media_type=media, headers=headers)


@router.post(
    "/conversations/import",
    status_code=201,
    summary="Import a conversation exported as JSON (a new conversation)",
)
async def import_conversation(
    request: Request, current: CurrentViewer, state: State
) -> dict[str, Any]:
    raw = await request.body()
    conversation = await run_in_threadpool(state.storage.transfer.import_json, current.user.id, raw)
    return await _full(state, current.user.id, conversation.id)
