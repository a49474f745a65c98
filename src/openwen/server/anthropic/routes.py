"""``POST /v1/messages`` and ``POST /v1/messages/count_tokens``. Errors under these paths are
Anthropic's ``{"type": "error", "error": {"type", "message"}}`` (registered in :func:`install`);
``anthropic-version`` and ``anthropic-beta`` headers are accepted and need nothing."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from openwen.server.anthropic import render, translate
from openwen.server.anthropic.protocol import CountTokensRequest, MessagesRequest
from openwen.server.errors import register_error_shape
from openwen.server.generating import generate
from openwen.server.openai.base import parse_request

router = APIRouter(tags=["Anthropic"])


def install(app: FastAPI, dependencies: list[Any]) -> None:
    app.include_router(router, dependencies=dependencies)
    register_error_shape("/v1/messages", render.anthropic_error)


@router.post("/v1/messages", summary="Create a message (Anthropic Messages API)")
async def create_message(request: Request) -> Response:
    received = time.perf_counter()
    body = parse_request(MessagesRequest, await request.body())
    chat = translate.chat_request(body)
    return await generate(
        request, chat, received=received, stream=body.stream,
        renderer=lambda model: render.MessageStream(body.model),
        respond=lambda model, events: render.message_body(body.model, events))


@router.post("/v1/messages/count_tokens", summary="Count a message's input tokens (Anthropic)")
async def count_tokens(request: Request) -> JSONResponse:
    body = parse_request(CountTokensRequest, await request.body())
    chat = translate.count_request(body)
    engine = await request.app.state.service.engine_for(chat.model)
    count = await asyncio.to_thread(engine.count_tokens, chat)
    return JSONResponse({"input_tokens": count})
