"""The generating-route skeleton every API dialect shares: start the answer, then stream or collect.

A dialect's route parses its body, translates it into a :class:`~openwen.requests.ChatRequest`
and calls :func:`generate` with two renderings of the answer path's events: a streaming
:class:`~openwen.server.sse.Renderer` and a function building the non-streaming body::

    return await generate(request, chat, received=received, stream=body.stream,
                          renderer=lambda model: MyChunks(model),
                          respond=lambda model, events: my_response(model, events))

The first event is read *before* any response header is sent, so everything that fails before
generation starts (unknown model, prompt longer than the context, full queue, bad schema) is a
proper HTTP error status (rendered by the error handlers in the dialect's shape) rather than an
error inside a 200 stream. A client that disconnects cancels the generation; a server that is
shutting down refuses new answers and ends running streams.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel

from openwen import stage_trace
from openwen.cache_salt import cache_salt_for
from openwen.chat.answer import answer, one_answer
from openwen.chat.service import ChatService
from openwen.errors import EngineError
from openwen.messages import Done
from openwen.requests import ChatRequest
from openwen.server.errors import ClientDisconnected
from openwen.server.metrics import dialect_of
from openwen.server.sse import Renderer, event_stream
from openwen.server.sse_response import CoalescingStreamingResponse
from openwen.tools.registry import ToolRegistry

T = TypeVar("T")


def chat_service(request: Request) -> ChatService:
    service: ChatService = request.app.state.service
    return service


def model_name(request: Request, chat: ChatRequest) -> str:
    """The model the request names, or the server's default."""
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
    """The request in the prefix-cache partition of the API key's user (shared without keys)."""
    user = getattr(request.state, "user", None)
    return dataclasses.replace(chat, cache_salt=cache_salt_for(user.id if user else None))


async def start_answer(request: Request, chat: ChatRequest, *, received: float,
                       tools: ToolRegistry | None = None, client_tools: Collection[str] = ()
                       ) -> tuple[Any, AsyncIterator[Any]]:
    """Start the answer and return its first event and the rest of the stream.

    With ``tools`` the server runs them (the agent loop) and the events are those of
    :func:`~openwen.chat.answer.one_answer`: ``client_tools`` are the request's own tools,
    whose calls go back to the client."""
    state = request.app.state
    if (stop := state.shutdown.refusal()) is not None:
        raise stop
    chat = salted(request, chat)
    events: AsyncIterator[Any] = answer(chat_service(request), chat, tools=tools)
    if tools is not None:
        events = one_answer(events, client_tools)
    try:
        first = await until_disconnect(request, anext(events))
    except StopAsyncIteration:
        raise EngineError("the engine produced no answer") from None
    except BaseException:
        await events.aclose()  # type: ignore[attr-defined]
        raise
    stage_trace.mark("first_event")
    dialect = dialect_of(request.scope["path"])  # not request.url: that builds a URL object
    state.metrics.ttft.labels(model_name(request, chat), dialect).observe(
        time.perf_counter() - received)
    return first, events


async def collect(request: Request, first: Any, events: AsyncIterator[Any]) -> list[Any]:
    """Every event of the answer (for non-streaming responses); the last one is Done."""

    async def gather() -> list[Any]:
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
    request.app.state.metrics.record_usage(model, done.usage, dialect_of(request.scope["path"]))


def stream_response(request: Request, model: str, first: Any, events: AsyncIterator[Any],
                    renderer: Renderer) -> StreamingResponse:
    """The streamed response in the renderer's framing; a client that disconnects cancels the
    generation."""
    body = event_stream(first, events, renderer,
                        on_done=lambda done: record_done(request, model, done),
                        stopping=request.app.state.shutdown.stop_error)
    framing = renderer.framing
    return CoalescingStreamingResponse(body, media_type=framing.media_type,
                                       headers=framing.headers)


async def generate(
    request: Request,
    chat: ChatRequest,
    *,
    received: float,
    stream: bool,
    renderer: Callable[[str], Renderer],
    respond: Callable[[str, list[Any]], BaseModel | dict[str, Any]],
    tools: ToolRegistry | None = None,
    client_tools: Collection[str] = (),
) -> Response:
    """A generating route's response: ``renderer(model)`` streams the answer, or
    ``respond(model, events)`` builds the whole body from every event (the last is Done)."""
    model = model_name(request, chat)
    first, events = await start_answer(request, chat, received=received, tools=tools,
                                       client_tools=client_tools)
    if stream:
        return stream_response(request, model, first, events, renderer(model))
    events_ = await collect(request, first, events)
    done = events_[-1]
    assert isinstance(done, Done)
    record_done(request, model, done)
    body = respond(model, events_)
    return JSONResponse(body.model_dump(mode="json") if isinstance(body, BaseModel) else body)
