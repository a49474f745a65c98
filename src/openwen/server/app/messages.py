"""Messages: send, edit, regenerate (each answered as a stream), switch branch, stop.

The answer streams as server-sent events, one JSON object per ``data:`` line, each named by an
``event:`` line:

- ``start``: ``{"conversation": {...}, "user_message": {...} | null, "message": {...}}``
  (the stored user message, and the answer being written, status ``streaming``);
- ``text`` / ``reasoning``: ``{"text": "..."}`` deltas of the answer and of its thinking;
- ``context``: ``{"citations": [...], "memories": [...], "remembered": {...} | null,
  "tools": [names], "error": str | null}``: the sources numbered [1], [2] ... the answer may
  cite (each with its document, passage and character span), the recalled memories, a memory
  stored from this message, and the tools the answer may call;
- ``tool_call``: ``{"index", "id", "name", "arguments"}`` (a call the model made);
- ``message``: ``{"message": {...}}`` a message of the answer was stored: the step that called
  tools (``tool_calls``, complete), a ``tool`` message per result (``metadata``: name,
  arguments, duration_ms, error, source, images), or the next assistant message (status
  ``streaming``), which the following ``text`` goes into;
- ``tool_confirm``: ``{"id", "call": {"id", "name", "arguments"}, "tool": {"name", "source",
  "description"}, "timeout"}``: the answer waits for ``POST /api/tool-confirmations/{id}``;
- ``tool_confirmed``: ``{"id", "approved", "by": "user" | "timeout"}``;
- ``done``: ``{"message": {...}, "status": "complete" | "incomplete", "finish_reason",
  "usage", "timings"}`` (``message`` is the final answer);
- ``error``: ``{"error": {"message", "type", "code"}, "message": {...}}`` (stored as ``error``).

Generation runs while the client listens: the stop endpoint, or the client going away, stops it,
and the partial answer is kept, marked ``incomplete``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from openwen.chat.conversations import (
    StepSaved,
    ToolConfirmAnswered,
    ToolConfirmRequest,
    Turn,
    TurnContext,
    TurnEnded,
    TurnStarted,
)
from openwen.messages import ReasoningDelta, TextDelta, ToolCallEvent
from openwen.server.app.schemas import (
    Edit,
    NewMessage,
    conversation_json,
    message_json,
    thread_json,
)
from openwen.server.app.security import CurrentViewer
from openwen.server.app.state import State
from openwen.server.sse import SSE_HEADERS, frame

router = APIRouter(prefix="/api", tags=["web app: messages"])



def sse(event: str, data: dict[str, Any]) -> bytes:
    return frame(data, event=event)


def encode(event: Any) -> bytes | None:
    if isinstance(event, TurnStarted):
        return sse(
            "start",
            {
                "conversation": conversation_json(event.conversation),
                "user_message": message_json(event.user_message) if event.user_message else None,
                "message": message_json(event.message),
            },
        )
    if isinstance(event, TextDelta):
        return sse("text", {"text": event.text})
    if isinstance(event, ReasoningDelta):
        return sse("reasoning", {"text": event.text})
    if isinstance(event, ToolCallEvent):
        call = event.call
        return sse(
            "tool_call",
            {"index": event.index, "id": call.id, "name": call.name, "arguments": call.arguments},
        )
    if isinstance(event, StepSaved):
        return sse("message", {"message": message_json(event.message)})
    if isinstance(event, TurnContext):
        return sse("context", context_json(event))
    if isinstance(event, ToolConfirmRequest):
        call = event.call
        return sse(
            "tool_confirm",
            {
                "id": event.id,
                "call": {"id": call.id, "name": call.name, "arguments": call.arguments},
                "tool": {"name": event.tool, "source": event.source,
                         "description": event.description},
                "timeout": event.timeout,
            },
        )
    if isinstance(event, ToolConfirmAnswered):
        return sse("tool_confirmed", {"id": event.id, "approved": event.approved, "by": event.by})
    if isinstance(event, TurnEnded):
        message = message_json(event.message) if event.message else None
        if event.error is not None:
            error = {
                "message": event.error.message,
                "type": event.error.type,
                "code": event.error.code,
            }
            return sse("error", {"error": error, "message": message})
        return sse(
            "done",
            {
                "message": message,
                "status": event.status,
                "finish_reason": event.finish_reason,
                "usage": vars(event.usage),
                "timings": vars(event.timings),
            },
        )
    return None


def context_json(event: TurnContext) -> dict[str, Any]:
    knowledge = event.knowledge
    remembered = knowledge.remembered
    return {
        "citations": knowledge.citations_json(),
        "memories": [{"id": m.id, "text": m.text} for m in knowledge.memories],
        "remembered": remembered.to_json() if remembered is not None else None,
        "tools": list(event.tools),
        "error": knowledge.error,
    }


async def stream_turn(request: Request, turn: Turn) -> AsyncIterator[bytes]:
    """The turn's events as SSE. Leaving (the client disconnected) stops the turn; a server
    shutting down ends it too."""
    gate = getattr(request.app.state, "shutdown", None)
    async for event in turn.events():
        if gate is not None and gate.stop_error() is not None:
            turn.stop()
        chunk = encode(event)
        if chunk is not None:
            yield chunk


def streaming(request: Request, turn: Turn) -> StreamingResponse:
    return StreamingResponse(
        stream_turn(request, turn), media_type="text/event-stream", headers=SSE_HEADERS
    )


def _refuse_when_draining(request: Request) -> None:
    gate = getattr(request.app.state, "shutdown", None)
    refusal = gate.refusal() if gate is not None else None
    if refusal is not None:
        raise refusal


@router.post(
    "/conversations/{conversation_id}/messages",
    summary="Send a message; the answer streams back as server-sent events",
)
async def send(
    conversation_id: str,
    body: NewMessage,
    request: Request,
    current: CurrentViewer,
    state: State,
) -> StreamingResponse:
    _refuse_when_draining(request)
    parent: Any = body.parent_id if "parent_id" in body.model_fields_set else "current"
    turn = await state.chat.send(current.user.id, conversation_id, body.content, parent_id=parent)
    return streaming(request, turn)


@router.post(
    "/messages/{message_id}/edit",
    summary="Edit a user message (a new branch) and stream the new answer",
)
async def edit(
    message_id: int,
    body: Edit,
    request: Request,
    current: CurrentViewer,
    state: State,
) -> StreamingResponse:
    _refuse_when_draining(request)
    turn = await state.chat.edit(current.user.id, message_id, body.content)
    return streaming(request, turn)


@router.post(
    "/messages/{message_id}/regenerate",
    summary="Answer again (a new branch) and stream the new answer",
)
async def regenerate(
    message_id: int,
    request: Request,
    current: CurrentViewer,
    state: State,
) -> StreamingResponse:
    _refuse_when_draining(request)
    turn = await state.chat.regenerate(current.user.id, message_id)
    return streaming(request, turn)


@router.post("/messages/{message_id}/stop", summary="Stop an answer being generated")
async def stop(message_id: int, current: CurrentViewer, state: State) -> dict[str, Any]:
    stopped = await state.chat.stop(current.user.id, message_id)
    message = await run_in_threadpool(state.storage.messages.get, current.user.id, message_id)
    return {"stopped": stopped, "message": message_json(message)}


@router.post(
    "/messages/{message_id}/switch",
    summary="Show the branch through this message (its newest continuation)",
)
async def switch(message_id: int, current: CurrentViewer, state: State) -> dict[str, Any]:
    user_id = current.user.id

    def run() -> dict[str, Any]:
        messages = state.storage.messages
        leaf = messages.set_current_leaf(user_id, message_id)
        conversation = state.storage.conversations.get(user_id, leaf.conversation_id)
        return {
            "conversation": conversation_json(conversation),
            "messages": thread_json(messages.thread(user_id, conversation.id)),
        }

    return await run_in_threadpool(run)


@router.get("/messages/{message_id}", summary="One message (to follow an answer in progress)")
async def get_message(message_id: int, current: CurrentViewer, state: State) -> dict[str, Any]:
    message = await run_in_threadpool(state.storage.messages.get, current.user.id, message_id)
    return {"message": message_json(message)}
