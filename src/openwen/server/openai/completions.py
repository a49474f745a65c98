"""``POST /v1/completions`` (legacy): a raw prompt continued without any chat template."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from openwen.server.generating import generate
from openwen.server.openai.chat import ERRORS
from openwen.server.openai.common import json_body_doc, read_request
from openwen.server.openai.protocol import CompletionRequest, CompletionResponse
from openwen.server.openai.render import CompletionChunks, completion_response

router = APIRouter(tags=["OpenAI"])


@router.post(
    "/v1/completions",
    summary="Create a text completion (legacy)",
    openapi_extra=json_body_doc(CompletionRequest),
    responses={200: {"model": CompletionResponse,
                     "description": "the continuation (or, with stream: true, text/event-stream)"},
               **ERRORS},
)
async def create_completion(request: Request) -> Response:
    received = time.perf_counter()
    body = await read_request(request, CompletionRequest)
    chat = body.to_chat_request()
    echo = body.prompt_text if body.echo else ""

    def respond(model: str, events: list[Any]) -> CompletionResponse:
        return completion_response(model, events, echo=echo, with_logprobs=chat.logprobs)

    return await generate(
        request, chat, received=received, stream=bool(body.stream), respond=respond,
        renderer=lambda model: CompletionChunks(model=model, include_usage=body.include_usage,
                                                echo=echo, logprobs=chat.logprobs))
