"""Thumbs up/down and edited answers: ``PUT /api/messages/{id}/feedback``.

The body sets either field or both; a field left out stays as it is:

- ``rating``: ``"good"``, ``"bad"`` or ``null`` (no rating; the web app's thumbs toggle);
- ``edited_content``: the user's own version of the answer, kept beside the original (which is
  never changed), or ``null`` to drop the edit.

The answer is ``{"message": {...}, "feedback": {"rating", "edited_content", "updated_at"} |
null}``. Only the conversation's owner can rate or edit (another user's message is a 404), only a
finished assistant answer can be rated (400 otherwise), and a bad body changes nothing.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from openwen.server.app.schemas import Body, message_json
from openwen.server.app.security import CurrentViewer
from openwen.server.app.state import State
from openwen.storage.feedback import MAX_EDIT_CHARS, UNSET

router = APIRouter(prefix="/api", tags=["web app: messages"])


class Feedback(Body):
    rating: Literal["good", "bad"] | None = None
    edited_content: str | None = Field(default=None, max_length=MAX_EDIT_CHARS)


@router.put("/messages/{message_id}/feedback",
            summary="Rate an answer (thumbs up/down) or store your edited version of it")
async def put_feedback(message_id: int, body: Feedback, current: CurrentViewer,
                       state: State) -> dict[str, Any]:
    user_id = current.user.id
    given = body.model_fields_set

    def run() -> dict[str, Any]:
        storage = state.storage
        record = storage.feedback.set(
            user_id, message_id,
            rating=body.rating if "rating" in given else UNSET,
            edited_content=body.edited_content if "edited_content" in given else UNSET)
        message = storage.messages.get(user_id, message_id)
        return {"message": message_json(message, feedback=record),
                "feedback": record.to_json() if record else None}

    return await run_in_threadpool(run)
