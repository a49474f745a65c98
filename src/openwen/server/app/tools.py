"""Tools in the web app: what the signed-in user's answers may call, and answering the
confirmation questions of side-effecting tools.

While an answer streams, a tool that needs confirmation (setting ``tools_confirm``) sends a
``tool_confirm`` event with an ``id``; the page answers with
``POST /api/tool-confirmations/{id}`` ``{"approve": true|false}``. Only the user whose answer
asks can answer (anyone else gets 404, as for a question that does not exist); no answer within
the timeout is a refusal.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from openwen.chat.turn_tools import tools_for
from openwen.server.app.schemas import ToolConfirmation
from openwen.server.app.security import CurrentViewer
from openwen.server.app.state import State
from openwen.tools.registry import confirmation_required

router = APIRouter(prefix="/api", tags=["web app: tools"])


@router.get("/tools", summary="The tools your answers may use, and which need your confirmation")
async def list_tools(current: CurrentViewer, state: State) -> dict[str, Any]:
    if state.tools is None:
        return {"tools": [], "problems": {}}
    chat = state.chat
    registry = await run_in_threadpool(tools_for, chat.tools, chat.knowledge, current.user.id)
    if registry is None:
        return {"tools": [], "problems": {}}
    confirm = confirmation_required(state.settings.tools_confirm, registry)
    tools = [
        {
            "name": t.name,
            "description": t.description,
            "source": t.source,
            "side_effects": t.side_effects,
            "needs_confirmation": t.name in confirm,
        }
        for t in registry
    ]
    return {"tools": tools, "problems": dict(registry.problems)}


@router.post(
    "/tool-confirmations/{confirmation_id}",
    summary="Allow or refuse a tool call an answer is waiting on",
)
async def answer_confirmation(
    confirmation_id: str, body: ToolConfirmation, current: CurrentViewer, state: State
) -> dict[str, Any]:
    message_id = await state.chat.answer_confirmation(current.user.id, confirmation_id,
                                                      body.approve)
    return {"id": confirmation_id, "approved": body.approve, "message_id": message_id}
