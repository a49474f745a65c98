"""``POST /v1/completions`` (legacy): a raw prompt continued without any chat template."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from openwen.messages import Done, StreamEvent, TextDelta
from openwen.server.openai.chat import ERRORS
from openwen.server.openai.common import (
    collect,
    json_body_doc,
    model_name,
    read_request,
    record_done,
    salted,
    start_answer,
    stream_response,
)
from openwen.server.openai.protocol import (
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
    CompletionResponse,
    UsageInfo,
)
from openwen.server.sse import (
    SYSTEM_FINGERPRINT,
    CompletionChunks,
    completion_logprobs,
    finish_reason,
    new_id,
    usage_dict,
)

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
    chat = salted(request, body.to_chat_request())
    model = model_name(request, chat)
    echo = body.prompt_text if body.echo else ""
    first, events = await start_answer(request, chat, received=received)
    if body.stream:
        chunks = CompletionChunks(model=model, include_usage=body.include_usage, echo=echo,
                                  logprobs=chat.logprobs)
        return stream_response(request, model, first, events, chunks)
    answer = await collect(request, first, events)
    done = answer[-1]
    assert isinstance(done, Done)
    record_done(request, model, done)
    response = completion_response(model, answer, echo=echo, with_logprobs=chat.logprobs)
    return JSONResponse(response.model_dump(mode="json"))


def completion_response(model: str, events: list[StreamEvent], *, echo: str,
                        with_logprobs: bool) -> CompletionResponse:
    done = events[-1]
    assert isinstance(done, Done)
    deltas = [e for e in events if isinstance(e, TextDelta)]
    logprobs = None
    if with_logprobs:
        tokens = [lp for d in deltas for lp in d.logprobs]
        logprobs = CompletionLogprobs.model_validate(completion_logprobs(tokens, len(echo)))
    choice = CompletionChoice(text=echo + "".join(d.text for d in deltas), logprobs=logprobs,
                              finish_reason=finish_reason(done))  # type: ignore[arg-type]
    return CompletionResponse(
        id=new_id("cmpl"), created=int(time.time()), model=model, choices=[choice],
        usage=UsageInfo.model_validate(usage_dict(done.usage)),
        system_fingerprint=SYSTEM_FINGERPRINT,
    )
