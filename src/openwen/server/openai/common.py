"""What the generating routes share: reading the body, starting an answer, client disconnects.

The first event of an answer is read *before* any response header is sent, so everything that
fails before generation starts (unknown model, prompt longer than the context, full queue, bad
schema) is a proper HTTP error status rather than an error inside a 200 stream.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from openwen.cache_salt import cache_salt_for
from openwen.chat.service import ChatService
from openwen.engines.base import ChatRequest
from openwen.errors import EngineError
from openwen.messages import Done, StreamEvent
from openwen.server.errors import ClientDisconnected
from openwen.server.openai.base import parse_request
from openwen.server.sse import Chunks, event_stream

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def json_body_doc(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON body the route parses itself."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}


async def read_request(request: Request, model: type[M]) -> M:
    """The body parsed as ``model``, whatever the Content-Type (``curl -d`` sends a form type)."""
    return parse_request(model, await request.body())


def chat_service(request: Request) -> ChatService:
    service: ChatService = request.app.state.service
    return service


def model_name(request: Request, chat: ChatRequest) -> str:
    return chat.model or chat_service(request).registry.default_model


async def until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``; if the client disconnects first, cancel it and raise ClientDisconnected."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_disconnect(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        watcher.cancel()
    if task.cancelled():
        raise ClientDisconnected()
    return task.result()


async def _wait_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def salted(request: Request, chat: ChatRequest) -> ChatRequest:
    """The request in the prefix-cache partition of the API key's user (none without keys)."""
    user = getattr(request.state, "user", None)
    return dataclasses.replace(chat, cache_salt=cache_salt_for(user.id if user else None))


async def start_answer(request: Request, chat: ChatRequest, *, received: float
                       ) -> tuple[StreamEvent, AsyncIterator[StreamEvent]]:
    """Start generating and return the first event and the rest of the stream."""
    state = request.app.state
    if (stop := state.shutdown.refusal()) is not None:
        raise stop
    events = chat_service(request).stream(chat)
    try:
        first = await until_disconnect(request, anext(events))
    except StopAsyncIteration:
        raise EngineError("the engine produced no answer") from None
    except BaseException:
        await events.aclose()  # type: ignore[attr-defined]
        raise
    state.metrics.ttft.labels(model_name(request, chat)).observe(time.perf_counter() - received)
    return first, events


async def collect(request: Request, first: StreamEvent, events: AsyncIterator[StreamEvent]
                  ) -> list[StreamEvent]:
    """Every event of the answer (for non-streaming responses); the last one is Done."""

    async def gather() -> list[StreamEvent]:
        out = [first]
        try:
            while not isinstance(out[-1], Done):
                out.append(await anext(events))
        except StopAsyncIteration:
            raise EngineError("the engine ended the answer without finishing it") from None
        finally:
            await events.aclose()  # type: ignore[attr-defined]
        return out

    return await until_disconnect(request, gather())


def record_done(request: Request, model: str, done: Done) -> None:
    request.app.state.metrics.record_usage(model, done.usage)


def stream_response(request: Request, model: str, first: StreamEvent,
                    events: AsyncIterator[StreamEvent], chunks: Chunks) -> StreamingResponse:
    """The SSE response; a client that disconnects cancels the generation."""
    body = event_stream(first, events, chunks,
                        on_done=lambda done: record_done(request, model, done),
                        stopping=request.app.state.shutdown.stop_error)
    return StreamingResponse(body, media_type="text/event-stream", headers=SSE_HEADERS)
