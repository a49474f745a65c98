"""``POST /v1/chat/completions``: a thin adapter over the chat service (or, for a request that
opts in to server-side tools, the agent loop: :mod:`openwen.server.openai.server_tools`)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from openwen.messages import Done, ReasoningDelta, StreamEvent, TextDelta, ToolCallEvent
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
    AssistantMessageOut,
    ChatChoice,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChoiceLogprobs,
    ErrorResponse,
    FunctionCallOut,
    TokenLogprobOut,
    ToolCallOut,
    UsageInfo,
)
from openwen.server.sse import (
    SYSTEM_FINGERPRINT,
    ChatChunks,
    finish_reason,
    new_id,
    token_logprob,
    usage_dict,
)

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
    body = await read_request(request, ChatCompletionRequest)
    chat = salted(request, body.to_chat_request())
    model = model_name(request, chat)
    if body.server_tools is not False:  # extension: the request opted in to server tools
        from openwen.server.openai.server_tools import respond

        return await respond(request, body, chat, model, received=received,
                             chat_response=chat_response)
    first, events = await start_answer(request, chat, received=received)
    if body.stream:
        chunks = ChatChunks(model=model, include_usage=body.include_usage)
        return stream_response(request, model, first, events, chunks)
    answer = await collect(request, first, events)
    done = answer[-1]
    assert isinstance(done, Done)
    record_done(request, model, done)
    response = chat_response(model, answer, with_logprobs=chat.logprobs)
    return JSONResponse(response.model_dump(mode="json"))


def chat_response(model: str, events: list[StreamEvent], *, with_logprobs: bool
                  ) -> ChatCompletionResponse:
    """The non-streaming response for a finished answer."""
    done = events[-1]
    assert isinstance(done, Done)
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta)) or None
    calls = [ToolCallOut(id=e.call.id, function=FunctionCallOut(name=e.call.name,
                                                                arguments=e.call.arguments))
             for e in events if isinstance(e, ToolCallEvent)]
    message = AssistantMessageOut(content=text if text or not calls else None,
                                  tool_calls=calls or None, reasoning_content=reasoning,
                                  reasoning=reasoning)
    logprobs = None
    if with_logprobs:
        entries = [TokenLogprobOut.model_validate(token_logprob(lp))
                   for e in events if isinstance(e, TextDelta) for lp in e.logprobs]
        logprobs = ChoiceLogprobs(content=entries)
    return ChatCompletionResponse(
        id=new_id("chatcmpl"),
        created=int(time.time()),
        model=model,
        choices=[ChatChoice(message=message, logprobs=logprobs,
                            finish_reason=finish_reason(done))],  # type: ignore[arg-type]
        usage=UsageInfo.model_validate(usage_dict(done.usage)),
        system_fingerprint=SYSTEM_FINGERPRINT,
    )
