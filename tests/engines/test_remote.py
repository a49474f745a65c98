"""The remote engine against a real OpenAI-compatible server and scripted stand-in upstreams."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import pytest

from openwen.config import load_settings
from openwen.engines.base import Engine
from openwen.engines.remote import RemoteEngine
from openwen.errors import (
    ConfigError,
    InvalidRequestError,
    ModelNotFoundError,
    OverloadedError,
    UpstreamError,
)
from openwen.messages import (
    Done,
    Message,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    Usage,
)
from openwen.requests import ChatRequest, Sampling

if TYPE_CHECKING:  # the fixtures' types; conftest is not importable as a module
    from conftest import Connection, LlamaServer, StandIn

    StartStandIn = Callable[..., StandIn]


def ask(text: str = "Say hello.", **fields: Any) -> ChatRequest:
    fields.setdefault("max_tokens", 8)
    fields.setdefault("sampling", Sampling(temperature=0.0, seed=1))
    return ChatRequest(messages=(Message("user", text),), **fields)


async def collect(engine: RemoteEngine, request: ChatRequest) -> list[StreamEvent]:
    return [event async for event in engine.stream(request)]


def text_of(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def chunk(
    delta: dict[str, Any], finish: str | None = None, logprobs: Any = None, **extra: Any
) -> dict[str, Any]:
    """A vLLM-shaped ``chat.completion.chunk``."""
    choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
    return {
        "id": "chatcmpl-7f3a",
        "object": "chat.completion.chunk",
        "created": 1735000000,
        "model": "Qwen/Qwen3-8B",
        "choices": [choice],
        **extra,
    }


async def send_events(conn: Connection, events: list[Any]) -> None:
    await conn.start_sse()
    for event in events:
        await conn.send_event(event)
    await conn.send_event("[DONE]")
    await conn.finish()


def replay(events: list[Any]) -> Callable[[Connection], Any]:
    """A handler answering every request with ``events`` then ``[DONE]``."""

    async def handle(conn: Connection) -> None:
        await conn.read_request()
        await send_events(conn, events)

    return handle


HELLO = [chunk({"role": "assistant", "content": ""}), chunk({"content": "Hi"}), chunk({}, "stop")]


# -- against llama-cpp-python's server ------------------------------------------------------


@pytest.mark.slow
async def test_streams_an_answer_from_a_real_server(llama_server: LlamaServer) -> None:
    async with RemoteEngine(
        llama_server.base_url, api_key=llama_server.api_key, model=llama_server.model
    ) as engine:
        assert isinstance(engine, Engine)
        events = await collect(engine, ask(max_tokens=6))

    deltas = [e for e in events if isinstance(e, TextDelta)]
    done = events[-1]
    assert deltas and text_of(events).strip()
    assert isinstance(done, Done) and done.finish_reason in ("stop", "length")
    # llama_cpp.server sends no usage when streaming: the engine counts one token per chunk.
    assert done.usage.completion_tokens == len(deltas) <= 6
    assert done.usage.prompt_tokens > 0
    assert done.timings.ttft_ms > 0


@pytest.mark.slow
async def test_lists_the_upstream_models_when_none_is_configured(
    llama_server: LlamaServer,
) -> None:
    async with RemoteEngine(llama_server.base_url, api_key=llama_server.api_key) as engine:
        listed = await engine.list_models()
        assert [m.id for m in listed] == ["smollm2"]
        assert engine.models() == listed  # cached: the sync call needs no request
        events = await collect(engine, ask(max_tokens=2))
    assert isinstance(events[-1], Done)


@pytest.mark.slow
@pytest.mark.parametrize("suffix", ["/proxy/v1", "/proxy/v1/"])
async def test_base_url_with_a_path_prefix(
    llama_server: LlamaServer, stand_in: StartStandIn, proxy_to: Callable[..., Any], suffix: str
) -> None:
    proxy = stand_in(proxy_to(llama_server.origin, "/proxy"))
    async with RemoteEngine(
        proxy.url + suffix, api_key=llama_server.api_key, model="smollm2"
    ) as engine:
        events = await collect(engine, ask(max_tokens=4))

    assert text_of(events)
    assert isinstance(events[-1], Done)
    [request] = proxy.requests
    assert request.path == "/proxy/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {llama_server.api_key}"
    body = request.json()
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 4 and body["model"] == "smollm2"


@pytest.mark.slow
async def test_a_wrong_api_key_is_a_clear_error(
    llama_server: LlamaServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "sk-wrong-0123456789"
    async with RemoteEngine(llama_server.base_url, api_key=secret, model="smollm2") as engine:
        with pytest.raises(UpstreamError, match="upstream rejected the API key") as caught:
            await collect(engine, ask())
        assert secret not in repr(engine)
    assert "HTTP 401" in caught.value.message and "check remote_api_key" in caught.value.message
    assert secret not in str(caught.value) and secret not in caplog.text

    async with RemoteEngine(llama_server.base_url, model="smollm2") as engine:
        with pytest.raises(UpstreamError, match="no API key is configured"):
            await collect(engine, ask())


@pytest.mark.slow
async def test_a_real_upstream_failing_after_its_answer_began(llama_server: LlamaServer) -> None:
    """llama_cpp.server answers 200 before it finds the prompt too long for its context, then
    ends the stream without ``[DONE]``: that must be an error, not an empty answer."""
    async with RemoteEngine(
        llama_server.base_url, api_key=llama_server.api_key, model="smollm2"
    ) as engine:
        with pytest.raises(UpstreamError, match="before the answer was finished"):
            await collect(engine, ask("word " * 2500))


# -- request body -----------------------------------------------------------------------------


async def test_request_body_carries_tools_history_and_extensions(stand_in: StartStandIn) -> None:
    upstream = stand_in(replay(HELLO))
    weather = {
        "type": "function",
        "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
    }
    call = ToolCall("call_1", "get_weather", '{"city": "Paris"}')
    request = ChatRequest(
        messages=(
            Message("developer", "Be brief."),
            Message("user", "Weather in Rome?"),
            Message("assistant", "Sunny.", reasoning="old thoughts"),
            Message("user", "And Paris?"),
            Message("assistant", None, reasoning="need the tool", tool_calls=(call,)),
            Message("tool", '{"temp": 21}', tool_call_id="call_1", name="get_weather"),
        ),
        model="ignored-when-configured",
        tools=(weather,),
        tool_choice="auto",
        parallel_tool_calls=False,
        sampling=Sampling(temperature=0.7, top_p=0.8, top_k=20, min_p=0.0, seed=3),
        stop=("\n\n",),
        max_tokens=32,
        response_format={"type": "json_object"},
        thinking=False,
        logprobs=True,
        top_logprobs=2,
        extra={"cache_prompt": True},
    )
    async with RemoteEngine(upstream.url + "/v1", model="Qwen/Qwen3-8B") as engine:
        await collect(engine, request)

    body = upstream.requests[0].json()
    assert body["model"] == "Qwen/Qwen3-8B"
    assert [m["role"] for m in body["messages"]] == [
        "system", "user", "assistant", "user", "assistant", "tool",
    ]  # fmt: skip
    old_answer, call_message, tool_message = (body["messages"][i] for i in (2, 4, 5))
    assert "reasoning_content" not in old_answer  # an earlier turn: templates drop it anyway
    assert call_message["reasoning_content"] == "need the tool"
    assert call_message["content"] is None
    assert call_message["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]
    assert tool_message == {
        "role": "tool", "content": '{"temp": 21}', "tool_call_id": "call_1", "name": "get_weather",
    }  # fmt: skip
    assert body["tools"] == [weather] and body["tool_choice"] == "auto"
    assert body["parallel_tool_calls"] is False
    assert (body["temperature"], body["top_p"], body["top_k"], body["min_p"], body["seed"]) == (
        0.7, 0.8, 20, 0.0, 3,
    )  # fmt: skip
    assert "presence_penalty" not in body and "repetition_penalty" not in body
    assert body["stop"] == ["\n\n"] and body["max_tokens"] == 32
    assert body["response_format"] == {"type": "json_object"}
    assert body["logprobs"] is True and body["top_logprobs"] == 2
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    assert body["cache_prompt"] is True
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


async def test_a_cookie_one_answer_set_never_goes_out_with_the_next_request(
    stand_in: StartStandIn,
) -> None:
    """One client carries every user's requests to an upstream: an upstream's ``Set-Cookie``
    (a session, a sticky-routing cookie) must not reach the next user's request."""

    async def handler(conn: Connection) -> None:
        await conn.read_request()
        await conn.send_head(200, {"Content-Type": "text/event-stream",
                                   "Set-Cookie": "session=alice-secret; Path=/"})
        for event in HELLO:
            await conn.send_event(event)
        await conn.send_event("[DONE]")
        await conn.finish()

    upstream = stand_in(handler)
    async with RemoteEngine(upstream.url + "/v1", model="m") as engine:
        assert text_of(await collect(engine, ask())) == "Hi"
        assert text_of(await collect(engine, ask("Another user."))) == "Hi"
    first, second = upstream.requests
    assert "cookie" not in first.headers and "cookie" not in second.headers
    assert second.headers["content-type"] == "application/json"
    assert second.json()["messages"] == [{"role": "user", "content": "Another user."}]


def test_request_bodies_are_compact_json_even_where_orjson_refuses() -> None:
    from openwen.engines.remote import dumps_body

    assert dumps_body({"a": "é", "b": [1, 2.5]}) == '{"a":"é","b":[1,2.5]}'.encode()
    wide = {"schema": {"maximum": 2**70}}  # a tool's schema may hold any integer
    assert json.loads(dumps_body(wide)) == wide
    assert json.loads(dumps_body({"t": float("nan")})) == {"t": None}


async def test_a_plain_request_sends_only_openai_fields(stand_in: StartStandIn) -> None:
    upstream = stand_in(replay(HELLO))
    async with RemoteEngine(upstream.url, model="m") as engine:
        await collect(engine, ChatRequest(messages=(Message("user", "hi"),)))
    assert upstream.requests[0].json() == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


# -- parsing the stream -----------------------------------------------------------------------


VLLM_TOOL_STREAM = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"reasoning_content": "The user wants"}),
    chunk({"reasoning_content": " two cities."}),
    chunk({"content": "Checking."}),
    chunk(
        {
            "tool_calls": [
                {
                    "id": "chatcmpl-tool-a1",
                    "type": "function",
                    "index": 0,
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ]
        }
    ),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
    chunk(
        {
            "tool_calls": [
                {
                    "id": "chatcmpl-tool-b2",
                    "type": "function",
                    "index": 1,
                    "function": {"name": "get_time", "arguments": '{"tz": "'},
                }
            ]
        }
    ),
    chunk({"tool_calls": [{"index": 1, "function": {"arguments": 'Europe/Rome"}'}}]}),
    chunk({"content": ""}, "tool_calls", stop_reason=None),
    {
        "id": "chatcmpl-7f3a",
        "object": "chat.completion.chunk",
        "created": 1735000000,
        "model": "Qwen/Qwen3-8B",
        "choices": [],
        "usage": {
            "prompt_tokens": 120,
            "total_tokens": 160,
            "completion_tokens": 40,
            "prompt_tokens_details": {"cached_tokens": 96},
        },
    },
]


async def test_tool_call_deltas_and_reasoning_from_a_vllm_stream(stand_in: StartStandIn) -> None:
    upstream = stand_in(replay(VLLM_TOOL_STREAM))
    async with RemoteEngine(upstream.url + "/v1", model="Qwen/Qwen3-8B") as engine:
        events = await collect(engine, ask())

    reasoning = [e.text for e in events if isinstance(e, ReasoningDelta)]
    calls = [e for e in events if isinstance(e, ToolCallEvent)]
    assert "".join(reasoning) == "The user wants two cities."  # deltas read together merge
    assert text_of(events) == "Checking."
    assert calls == [
        ToolCallEvent(0, ToolCall("chatcmpl-tool-a1", "get_weather", '{"city": "Paris"}')),
        ToolCallEvent(1, ToolCall("chatcmpl-tool-b2", "get_time", '{"tz": "Europe/Rome"}')),
    ]
    assert events[-1] == Done(
        "tool_calls", Usage(120, 40, cached_tokens=96), timings=events[-1].timings
    )
    assert events.index(calls[0]) > max(i for i, e in enumerate(events) if isinstance(e, TextDelta))


async def test_reasoning_field_logprobs_and_length_finish(stand_in: StartStandIn) -> None:
    logprobs = {
        "content": [
            {
                "token": "Hi",
                "logprob": -0.25,
                "bytes": [72, 105],
                "top_logprobs": [{"token": "Hi", "logprob": -0.25, "bytes": [72, 105]}],
            }
        ]
    }
    events_in = [
        chunk({"role": "assistant", "reasoning": "hmm"}),  # newer vLLM spells it "reasoning"
        chunk({"content": "Hi"}, logprobs=logprobs),
        chunk({}, "length"),
    ]
    upstream = stand_in(replay(events_in))
    async with RemoteEngine(upstream.url, model="m") as engine:
        events = await collect(engine, ask(logprobs=True))

    assert events[0] == ReasoningDelta("hmm")
    [delta] = [e for e in events if isinstance(e, TextDelta)]
    assert delta.text == "Hi" and delta.logprobs[0].token == "Hi"
    assert delta.logprobs[0].logprob == -0.25 and delta.logprobs[0].top == (("Hi", -0.25),)
    assert isinstance(events[-1], Done) and events[-1].finish_reason == "length"


async def test_comments_and_missing_tool_call_ids_are_tolerated(stand_in: StartStandIn) -> None:
    async def handle(conn: Connection) -> None:
        await conn.read_request()
        await conn.start_sse()
        await conn.send_body(b": ping - keep-alive\r\n\r\n")
        await conn.send_event(
            chunk({"tool_calls": [{"function": {"name": "now", "arguments": "{}"}}]})
        )
        await conn.send_event(chunk({}, "stop"))
        await conn.send_event("[DONE]")
        await conn.finish()

    upstream = stand_in(handle)
    async with RemoteEngine(upstream.url, model="m") as engine:
        events = await collect(engine, ask())
    [call] = [e for e in events if isinstance(e, ToolCallEvent)]
    assert call.call.name == "now" and call.call.id.startswith("call_")
    assert isinstance(events[-1], Done) and events[-1].finish_reason == "tool_calls"


async def test_an_upstream_that_ignores_stream_true(stand_in: StartStandIn) -> None:
    async def handle(conn: Connection) -> None:
        await conn.read_request()
        message = {"role": "assistant", "content": "Whole answer."}
        await conn.send_json(
            200,
            {
                "object": "chat.completion",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
            },
        )

    upstream = stand_in(handle)
    async with RemoteEngine(upstream.url, model="m") as engine:
        events = await collect(engine, ask())
    assert text_of(events) == "Whole answer."
    assert isinstance(events[-1], Done) and events[-1].usage == Usage(9, 3)


# -- failures ---------------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
async def test_the_upstream_dying_mid_stream(stand_in: StartStandIn, chunked: bool) -> None:
    async def handle(conn: Connection) -> None:
        await conn.read_request()
        await conn.send_head(200, {"Content-Type": "text/event-stream"}, chunked=chunked)
        await conn.send_event(chunk({"role": "assistant", "content": "Hel"}))
        await conn.send_event(chunk({"content": "lo"}))
        conn.drop()

    upstream = stand_in(handle)
    seen: list[StreamEvent] = []
    async with RemoteEngine(upstream.url, model="m", retries=2) as engine:
        with pytest.raises(UpstreamError, match="mid-answer|before the answer was finished"):
            async for event in engine.stream(ask()):
                seen.append(event)
    # Everything streamed before the drop is kept (deltas read together travel as one).
    assert all(isinstance(e, TextDelta) for e in seen)
    assert "".join(e.text for e in seen if isinstance(e, TextDelta)) == "Hello"
    assert upstream.connections == 1  # never retried once streaming started


async def test_an_error_event_mid_stream(stand_in: StartStandIn) -> None:
    events = [chunk({"content": "Hel"}), {"error": {"message": "CUDA out of memory", "code": 500}}]
    upstream = stand_in(replay(events))
    async with RemoteEngine(upstream.url, model="m") as engine:
        with pytest.raises(UpstreamError, match="failed mid-answer: CUDA out of memory"):
            await collect(engine, ask())


VLLM_MODEL_404 = {
    "object": "error",
    "message": "The model `qwen-typo` does not exist.",
    "type": "NotFoundError",
    "param": None,
    "code": 404,
}


@pytest.mark.parametrize(
    ("status", "payload", "headers", "error", "text"),
    [
        (400, {"error": {"message": "max_tokens must be at least 1", "param": "max_tokens"}},
         {}, InvalidRequestError, "max_tokens must be at least 1"),
        (403, {"error": "forbidden"}, {}, UpstreamError, "upstream rejected the API key"),
        (404, {"detail": "Not Found"}, {}, UpstreamError, "usually /v1"),
        (429, {"error": {"message": "rate limited"}}, {"Retry-After": "7"}, OverloadedError,
         "rate limited"),
        (503, {"error": {"message": "no capacity"}}, {}, OverloadedError, "no capacity"),
        (500, {"error": {"message": "engine crashed"}}, {}, UpstreamError, "HTTP 500"),
    ],
)  # fmt: skip
async def test_error_statuses_map_to_openwen_errors(
    stand_in: StartStandIn,
    status: int,
    payload: Any,
    headers: dict[str, str],
    error: type[Exception],
    text: str,
) -> None:
    async def handle(conn: Connection) -> None:
        await conn.read_request()
        await conn.send_json(status, payload, headers)

    upstream = stand_in(handle)
    async with RemoteEngine(upstream.url, model="m", retries=2, api_key="sk-x") as engine:
        with pytest.raises(error, match=text) as caught:
            await collect(engine, ask())
    assert upstream.connections == 1  # an HTTP status is never retried
    if isinstance(caught.value, OverloadedError):
        assert caught.value.retry_after == (7 if status == 429 else 1)
    if isinstance(caught.value, InvalidRequestError):
        assert caught.value.param == "max_tokens"


async def test_an_unknown_model_lists_what_the_upstream_has(stand_in: StartStandIn) -> None:
    async def handle(conn: Connection) -> None:
        request = await conn.read_request()
        if request.path.endswith("/models"):
            models = [{"id": "Qwen/Qwen3-8B", "object": "model", "max_model_len": 32768}]
            await conn.send_json(200, {"object": "list", "data": models})
        else:
            await conn.send_json(404, VLLM_MODEL_404)

    upstream = stand_in(handle)
    async with RemoteEngine(upstream.url + "/v1", model="qwen-typo") as engine:
        with pytest.raises(ModelNotFoundError) as caught:
            await collect(engine, ask())
    assert caught.value.available == ["Qwen/Qwen3-8B"]
    assert "model 'qwen-typo' not found" in caught.value.message
    assert "does not exist" in caught.value.message


async def test_upstream_messages_never_echo_the_key(stand_in: StartStandIn) -> None:
    secret = "sk-live-abcdef123456"

    async def handle(conn: Connection) -> None:
        await conn.read_request()
        await conn.send_json(401, {"error": {"message": f"Incorrect API key provided: {secret}"}})

    upstream = stand_in(handle)
    async with RemoteEngine(upstream.url, model="m", api_key=secret) as engine:
        with pytest.raises(UpstreamError) as caught:
            await collect(engine, ask())
    assert upstream.requests[0].headers["authorization"] == f"Bearer {secret}"
    assert secret not in str(caught.value)
    assert "Incorrect API key provided: ***" in str(caught.value)


# -- retries ----------------------------------------------------------------------------------


async def test_a_connection_reset_before_any_answer_is_retried(stand_in: StartStandIn) -> None:
    async def handle(conn: Connection) -> None:
        await conn.read_request()
        if conn.number == 0:
            conn.reset()
            return
        await send_events(conn, HELLO)

    upstream = stand_in(handle)
    async with RemoteEngine(upstream.url, model="m", retries=1, backoff=0.01) as engine:
        events = await collect(engine, ask())
    assert text_of(events) == "Hi"
    assert upstream.connections == 2


async def test_a_refused_connection_is_retried_until_the_upstream_listens(
    stand_in: StartStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    """The first attempt is refused (the port is bound but not listening); the retry warning
    makes the stand-in start listening, so the second attempt connects."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    upstream = stand_in(replay(HELLO), sock=sock)

    class ListenOnRetry(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "retry 1 of" in record.getMessage():
                upstream.listen()

    handler = ListenOnRetry()
    logger = logging.getLogger("openwen.engines.remote")
    logger.addHandler(handler)
    try:
        async with RemoteEngine(upstream.url, model="m", retries=2, backoff=0.01) as engine:
            events = await collect(engine, ask())
    finally:
        logger.removeHandler(handler)
    assert text_of(events) == "Hi"
    assert upstream.connections == 1
    [warning] = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert warning.startswith(f"upstream {upstream.url}/chat/completions: ConnectError")
    assert warning.endswith("retry 1 of 2 in 0.01 s")


async def test_gives_up_after_the_retries(
    closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "sk-never-logged-42"
    url = f"http://user:pw@127.0.0.1:{closed_port}/v1"
    async with RemoteEngine(url, model="m", api_key=secret, retries=2, backoff=0.01) as engine:
        with pytest.raises(UpstreamError, match=r"cannot reach .* \(3 attempts\)") as caught:
            await collect(engine, ask())
    retries = [r for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 2
    for text in (str(caught.value), caplog.text):
        assert secret not in text and "pw@" not in text


# -- cancellation -----------------------------------------------------------------------------


def endless() -> Callable[[Connection], Any]:
    """A handler streaming tokens until the client goes away, which it then records."""

    async def handle(conn: Connection) -> None:
        await conn.read_request()
        await conn.start_sse()
        gone = asyncio.ensure_future(conn.reader.read())  # b"" (EOF) once the client closes
        n = 0
        while not gone.done():
            await conn.send_event(chunk({"content": f"t{n} "}))
            n += 1
            await asyncio.sleep(0.005)
        conn.server.client_gone.set()

    return handle


async def test_closing_the_iterator_closes_the_connection(stand_in: StartStandIn) -> None:
    upstream = stand_in(endless())
    async with RemoteEngine(upstream.url, model="m") as engine:
        events = engine.stream(ask())
        text = ""
        while len(text) < len("t0 t1 t2 "):  # deltas read together come as one
            text += (await anext(events)).text
        assert text.startswith("t0 t1 t2 ")
        assert not upstream.client_gone.is_set()
        await events.aclose()  # type: ignore[attr-defined]
        assert await asyncio.to_thread(upstream.client_gone.wait, 30)


async def test_cancelling_the_consumer_closes_the_connection(stand_in: StartStandIn) -> None:
    upstream = stand_in(endless())
    started = asyncio.Event()

    async def consume(engine: RemoteEngine) -> None:
        async for _ in engine.stream(ask()):
            started.set()

    async with RemoteEngine(upstream.url, model="m") as engine:
        task = asyncio.create_task(consume(engine))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await asyncio.to_thread(upstream.client_gone.wait, 30)


# -- settings, models, token estimate ---------------------------------------------------------


async def test_from_settings(stand_in: StartStandIn) -> None:
    upstream = stand_in(replay(HELLO))
    settings = load_settings(
        remote_base_url=upstream.url + "/v1/",
        remote_api_key="sk-from-settings",
        remote_model="Qwen/Qwen3-8B",
        remote_retries=5,
        remote_timeout=30,
    ).settings
    async with RemoteEngine.from_settings(settings) as engine:
        assert (engine.base_url, engine.model, engine.retries) == (
            upstream.url + "/v1", "Qwen/Qwen3-8B", 5,
        )  # fmt: skip
        assert [m.id for m in engine.models()] == ["Qwen/Qwen3-8B"]
        await collect(engine, ask())
    assert upstream.requests[0].headers["authorization"] == "Bearer sk-from-settings"
    assert "sk-from-settings" not in repr(engine)

    with pytest.raises(ConfigError, match="remote_base_url"):
        RemoteEngine.from_settings(load_settings().settings)
    with pytest.raises(ConfigError, match="http"):
        RemoteEngine("localhost:8000/v1")


async def test_models_of_an_unreachable_upstream_is_empty_not_an_error(
    closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    async with RemoteEngine(f"http://127.0.0.1:{closed_port}/v1") as engine:
        assert engine.models() == []
    assert "cannot list models" in caplog.text
    async with RemoteEngine(f"http://127.0.0.1:{closed_port}/v1", model="pinned") as engine:
        [info] = engine.models()  # a configured model needs no request
        assert info.id == "pinned" and info.details["engine"] == "remote"


def test_count_tokens_is_a_rough_estimate() -> None:
    engine = RemoteEngine("http://127.0.0.1:9/v1")
    short = engine.count_tokens(ChatRequest(messages=(Message("user", "hi"),)))
    long = engine.count_tokens(ChatRequest(messages=(Message("user", "lorem ipsum " * 100),)))
    chinese = engine.count_tokens(ChatRequest(messages=(Message("user", "你好世界" * 100),)))
    assert 0 < short < 20
    assert 250 < long < 400  # 1,200 characters of English
    assert chinese > 250  # CJK text takes far more tokens per character
    asyncio.run(engine.aclose())


def test_no_model_field_when_no_model_is_known() -> None:
    from openwen.engines.remote_body import build_body

    body = build_body(ask(), None)
    assert "model" not in body
    assert body["messages"] == [{"role": "user", "content": "Say hello."}]


async def test_sse_events_from_bytes_split_anywhere() -> None:
    from openwen.engines.remote_stream import SseEvent, iter_sse_batches

    stream = ("data: {\"a\": \"é中\"}\r\n\r\n: ping\n\nevent: error\ndata: one\ndata: two\n\n"
              "data:tight\n\ndata: [DONE]").encode()

    async def pieces(size: int) -> AsyncIterator[bytes]:
        for i in range(0, len(stream), size):
            yield stream[i:i + size]

    expected = [SseEvent('{"a": "é中"}'.encode()), SseEvent(b"one\ntwo", "error"),
                SseEvent(b"tight"), SseEvent(b"[DONE]")]
    for size in (1, 2, 3, 7, len(stream)):
        assert [e async for batch in iter_sse_batches(pieces(size)) for e in batch] == expected


async def test_events_of_one_read_come_as_one_batch() -> None:
    from openwen.engines.remote_stream import SseEvent, iter_sse_batches

    reads = [b"data: a\n\ndata: b\n\nda", b"ta: c\n\n", b": ping\n\n"]

    async def pieces() -> AsyncIterator[bytes]:
        for read in reads:
            yield read

    batches = [batch async for batch in iter_sse_batches(pieces())]
    assert batches == [[SseEvent(b"a"), SseEvent(b"b")], [SseEvent(b"c")]]


async def test_sse_fast_path_and_line_path_agree_wherever_the_reads_split() -> None:
    """LF-only streams are cut at blank lines in one go; every way of splitting the reads (so
    that each path meets events the other began) gives the same events."""
    from openwen.engines.remote_stream import SseEvent, iter_sse_batches

    stream = (b'data: {"x":1}\n\n\n\n: ping\n\ndata: a\ndata: b\n\nevent: error\ndata: e\n\n'
              b"data:no-space\n\nid: 7\ndata: z\n\ndata: \xff\xfe\n\ndata: last")
    expected = [SseEvent(b'{"x":1}'), SseEvent(b"a\nb"), SseEvent(b"e", "error"),
                SseEvent(b"no-space"), SseEvent(b"z"), SseEvent(b"\xff\xfe"), SseEvent(b"last")]

    async def pieces(size: int) -> AsyncIterator[bytes]:
        for i in range(0, len(stream), size):
            yield stream[i:i + size]

    for size in range(1, len(stream) + 1):
        got = [e async for batch in iter_sse_batches(pieces(size)) for e in batch]
        assert got == expected, size


def test_plain_text_runs_become_one_delta_and_other_chunks_keep_their_place() -> None:
    """The reader's batch path gives what chunk-by-chunk reading and merging give."""
    from openwen.engines.remote_stream import ChunkReader, merge_deltas
    from openwen.messages import ReasoningDelta

    def choice(delta: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"id": "c", "choices": [{"index": 0, "delta": delta, **extra}]}

    chunks = [choice({"role": "assistant", "content": ""}), choice({"reasoning_content": "hm"}),
              choice({"content": "He"}), choice({"content": "llo"}),
              choice({"content": "!"}, logprobs={"content": [{"token": "!", "logprob": -1.0}]}),
              choice({"content": " ok"}), choice({}, finish_reason="stop"),
              {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 5}}]
    one_by_one = ChunkReader(0.0, lambda: 0)
    expected = merge_deltas([e for chunk in chunks for e in one_by_one.feed(chunk)])
    batched = ChunkReader(0.0, lambda: 0)
    events: list[StreamEvent] = []
    batched.feed_all(chunks, events)
    assert merge_deltas(events) == expected
    assert expected[0] == ReasoningDelta("hm") and expected[1].text == "Hello! ok"
    assert batched.generated_chunks == one_by_one.generated_chunks == 5
    done, reference = batched.finish()[-1], one_by_one.finish()[-1]
    assert isinstance(done, Done) and isinstance(reference, Done)
    assert (done.finish_reason, done.usage) == (reference.finish_reason, reference.usage)
    assert done.usage.completion_tokens == 5


def test_an_error_chunk_keeps_the_text_read_before_it() -> None:
    from openwen.engines.remote_stream import ChunkReader
    from openwen.errors import UpstreamError

    reader = ChunkReader(0.0, lambda: 0)
    events: list[StreamEvent] = []
    chunks = [{"choices": [{"delta": {"content": "par"}}]},
              {"choices": [{"delta": {"content": "tial"}}]}, {"error": {"message": "boom"}}]
    with pytest.raises(UpstreamError, match="boom"):
        reader.feed_all(chunks, events)
    assert events == [TextDelta("partial")]


def test_deltas_read_together_are_merged_in_order() -> None:
    from openwen.engines.remote_stream import merge_deltas
    from openwen.messages import ReasoningDelta, TokenLogprob, ToolCall, ToolCallEvent

    one, two = TokenLogprob("He", -0.1, None, ()), TokenLogprob("llo", -0.2, None, ())
    call = ToolCallEvent(index=0, call=ToolCall(id="c1", name="f", arguments="{}"))
    events: list[StreamEvent] = [
        ReasoningDelta("thin"), ReasoningDelta("king"),
        TextDelta("He", logprobs=(one,)), TextDelta("llo", logprobs=(two,)), call, TextDelta("!"),
    ]
    assert merge_deltas(events) == [ReasoningDelta("thinking"),
                                    TextDelta("Hello", logprobs=(one, two)), call, TextDelta("!")]
    assert merge_deltas([TextDelta("x")]) == [TextDelta("x")]


def test_chunks_parse_like_the_standard_library_where_orjson_refuses() -> None:
    """The fast parser's refusals that JSON allows fall back to the standard library."""
    from openwen.engines.remote import loads_chunk

    assert loads_chunk('{"choices":[{"delta":{"content":"hi"}}]}') == {
        "choices": [{"delta": {"content": "hi"}}]}
    assert loads_chunk('{"content":"\\ud83d"}') == {"content": "\ud83d"}  # half an emoji
    assert math.isnan(loads_chunk('{"x":NaN}')["x"])
    with pytest.raises(ValueError):
        loads_chunk('{"broken":')
