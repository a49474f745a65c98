"""``POST /v1/chat/completions``: a thin adapter over the answer path (with the server's own
tools for a request that opts in: :mod:`openwen.server.openai.server_tools`)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from openwen import stage_trace
from openwen.server.generating import generate
from openwen.server.openai.common import json_body_doc, read_request
from openwen.server.openai.protocol import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    ErrorResponse,
)
from openwen.server.openai.render import ChatChunks, chat_response

router = APIRouter(tags=["OpenAI"])

ERRORS: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in [(400, "invalid request"), (401, "missing or wrong API key"),
                         (404, "unknown model"), (413, "body too large"),
                         (503, "queue full (see Retry-After)")]
}


@router.post(
    "/v1/chat/completions",
    summary="Create a chat completion",
    openapi_extra=json_body_doc(ChatCompletionRequest),
    responses={200: {"model": ChatCompletionResponse,
                     "description": "the answer (or, with stream: true, text/event-stream)"},
               **ERRORS},
)
async def create_chat_completion(request: Request) -> Response:
    received = time.perf_counter()
    stage_trace.begin(received)
    body = await read_request(request, ChatCompletionRequest)
    stage_trace.mark("parsed")
    chat = body.to_chat_request()
    if body.server_tools is not False:  # extension: the request opted in to server tools
        from openwen.server.openai.server_tools import respond

        return await respond(request, body, chat, received=received)

    def respond_all(model: str, events: list[Any]) -> ChatCompletionResponse:
        return chat_response(model, events, with_logprobs=chat.logprobs)

    return await generate(
        request, chat, received=received, stream=bool(body.stream), respond=respond_all,
        renderer=lambda model: ChatChunks(model=model, include_usage=body.include_usage))
