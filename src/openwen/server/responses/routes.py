"""``/v1/responses``: create, retrieve, delete, cancel, list input items (OpenAI Responses API).

A response with ``store`` (the default) is saved in the database, owned by the API key's user
(the keyless local API has its own space), and survives a restart; another user's id is a 404.
``background: true`` returns at once and keeps generating; poll ``GET /v1/responses/{id}`` and
stop it with ``POST /v1/responses/{id}/cancel``. ``previous_response_id`` continues a stored
response: its input and output items come before this request's ``input``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from openwen.errors import ContextLengthError, InvalidRequestError, NotFoundError
from openwen.server.errors import ClientDisconnected, error_response
from openwen.server.generating import model_name, start_answer, until_disconnect
from openwen.server.openai.chat import ERRORS
from openwen.server.openai.common import json_body_doc, read_request
from openwen.server.responses.protocol import InputItem, ResponseCreateRequest
from openwen.server.responses.render import Payload, ResponseBuilder, request_echo
from openwen.server.responses.runs import ResponseRun
from openwen.server.responses.state import ResponsesState
from openwen.server.responses.translate import parse_items, stored_item, to_chat_request
from openwen.server.sse import TYPED_SSE, framed
from openwen.server.sse_response import CoalescingStreamingResponse

router = APIRouter(tags=["OpenAI Responses"])


def responses_state(request: Request) -> ResponsesState:
    state: ResponsesState = request.app.state.responses
    return state


def owner_of(request: Request) -> int | None:
    """The API key's user; None for the keyless local API."""
    user = getattr(request.state, "user", None)
    return getattr(user, "id", None)


async def history_of(state: ResponsesState, owner: int | None, previous: str | None
                     ) -> list[InputItem]:
    """The items of every response along the ``previous_response_id`` chain, oldest first."""
    if previous is None:
        return []
    try:
        chain = await state.call("chain", owner, previous)
    except NotFoundError as exc:
        raise NotFoundError(exc.message, param="previous_response_id") from None
    if chain[-1].status in ("queued", "in_progress"):
        raise InvalidRequestError(f"response {previous!r} has not finished yet",
                                  param="previous_response_id")
    raw: list[Any] = []
    for record in chain:
        raw += record.input_items
        raw += record.body.get("output") or []
    return parse_items(raw, "previous_response_id")


@router.post(
    "/v1/responses",
    summary="Create a response",
    openapi_extra=json_body_doc(ResponseCreateRequest),
    responses={200: {"description": "the Response (or, with stream: true, text/event-stream)"},
               **ERRORS},
)
async def create_response(request: Request) -> Response:
    received = time.perf_counter()
    body = await read_request(request, ResponseCreateRequest)
    if body.background and not body.stored:
        raise InvalidRequestError("background responses need store: true", param="background")
    state, owner = responses_state(request), owner_of(request)
    items = parse_items(body.input)
    history = await history_of(state, owner, body.previous_response_id)
    chat = to_chat_request(body, history, items)
    model = model_name(request, chat)
    try:
        first, events = await start_answer(request, chat, received=received)
    except ContextLengthError as exc:
        exc.param = "input"
        raise
    builder = ResponseBuilder(f"resp_{secrets.token_hex(24)}", model, request_echo(body),
                              with_logprobs=chat.logprobs)
    if body.stored:
        try:
            await state.save(owner, builder, input_items=[stored_item(i) for i in items],
                             previous_response_id=body.previous_response_id,
                             background=bool(body.background))
        except BaseException:
            await events.aclose()  # type: ignore[attr-defined]
            raise

    async def save(done: ResponseBuilder) -> None:
        if body.stored:
            await state.save(owner, done)

    metrics = request.app.state.metrics
    run = ResponseRun(builder, first, events, owner=owner, background=bool(body.background),
                      stream=bool(body.stream), save=save,
                      on_done=lambda done: metrics.record_usage(model, done.usage))
    if body.stored:
        state.track(run)  # GET, cancel and delete find it while it runs
    if body.stream:
        return CoalescingStreamingResponse(framed(run_payloads(request, run), TYPED_SSE),
                                           media_type=TYPED_SSE.media_type,
                                           headers=TYPED_SSE.headers)
    if body.background:
        return JSONResponse(builder.snapshot())
    try:
        await until_disconnect(request, run.wait())
    except ClientDisconnected:
        run.stop()
        raise
    if builder.failure is not None:
        return error_response(builder.failure, request.url.path)
    return JSONResponse(builder.snapshot())


async def run_payloads(request: Request, run: ResponseRun) -> AsyncIterator[Payload]:
    """The run's streaming events as they come. A client that goes away stops a foreground
    run; a server shutting down stops every run."""
    assert run.queue is not None
    gate = request.app.state.shutdown
    try:
        while (payload := await run.queue.get()) is not None:
            yield payload
            if run.running and (stop := gate.stop_error()) is not None:
                run.stop(stop)
    finally:
        if not run.background:
            run.stop()


@router.get("/v1/responses/{response_id}", summary="Retrieve a response")
async def get_response(response_id: str, request: Request) -> dict[str, Any]:
    return await responses_state(request).get(owner_of(request), response_id)


@router.delete("/v1/responses/{response_id}", summary="Delete a stored response")
async def delete_response(response_id: str, request: Request) -> dict[str, Any]:
    state, owner = responses_state(request), owner_of(request)
    await state.get(owner, response_id)  # 404 before anything stops
    run = state.runs.get(response_id)
    if run is not None and run.owner == owner:
        run.stop()
        await run.wait()
    await state.call("delete", owner, response_id)
    return {"id": response_id, "object": "response", "deleted": True}


@router.post("/v1/responses/{response_id}/cancel", summary="Cancel a background response")
async def cancel_response(response_id: str, request: Request) -> dict[str, Any]:
    state, owner = responses_state(request), owner_of(request)
    current = await state.get(owner, response_id)
    if not current.get("background"):
        raise InvalidRequestError("only background responses can be cancelled",
                                  param="response_id")
    run = state.runs.get(response_id)
    if run is not None and run.owner == owner:
        run.stop()
        return (await run.wait()).snapshot()
    return current


@router.get("/v1/responses/{response_id}/input_items",
            summary="List a response's input items")
async def list_input_items(
    response_id: str,
    request: Request,
    after: str | None = None,
    limit: int = Query(20, ge=1, le=100),
    order: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:
    record = await responses_state(request).call("get", owner_of(request), response_id)
    items = list(record.input_items)
    if order == "desc":
        items.reverse()
    if after is not None:
        ids = [item.get("id") for item in items]
        if after not in ids:
            raise InvalidRequestError(f"no input item {after!r} in this response",
                                      param="after")
        items = items[ids.index(after) + 1:]
    page = items[:limit]
    return {"object": "list", "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(items) > limit}
