"""Queue limits, client disconnects, simultaneous clients and graceful shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest
from serverkit import RunningServer, running_server, server_settings, sse_events

pytestmark = pytest.mark.slow

ESSAY = [{"role": "user", "content": "Write a very long essay about the history of the sea."}]


def wait_until(condition: Callable[[], bool], what: str, limit: float = 120.0) -> None:
    """Poll (bounded) until ``condition`` holds; not a timing assertion, only a safety net."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def content_chunks(lines: Iterator[str], count: int) -> int:
    """Read the stream until ``count`` chunks carrying content arrived."""
    seen = 0
    for payload in sse_events(lines):
        if payload != "[DONE]" and json.loads(payload)["choices"][0]["delta"].get("content"):
            seen += 1
            if seen >= count:
                break
    return seen


def depth(server: RunningServer) -> int:
    models = httpx.get(server.url + "/health").json()["models"]
    return sum(m["queue_depth"] or 0 for m in models)


def test_disconnect_mid_stream_stops_generation(api: RunningServer) -> None:
    with httpx.Client(base_url=api.url, timeout=120) as http:
        http.post("/v1/chat/completions", json={"messages": ESSAY, "max_tokens": 1})
        engine = api.engine()
        engine.last_cancelled_tokens = 0
        body = {"messages": ESSAY, "max_tokens": 1500, "stream": True, "temperature": 0}
        with http.stream("POST", "/v1/chat/completions", json=body) as response:
            assert content_chunks(response.iter_lines(), 3) == 3
        # the client is gone: the worker must stop decoding and free its place
        wait_until(lambda: engine.worker.queue_depth == 0, "the worker to be free")
        assert 3 <= engine.last_cancelled_tokens < 1500
        answer = http.post("/v1/chat/completions",
                           json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2})
        assert answer.status_code == 200


def test_disconnect_while_waiting_for_a_whole_answer_stops_it(api: RunningServer) -> None:
    engine = api.engine()
    with httpx.Client(base_url=api.url, timeout=120) as http:
        http.post("/v1/chat/completions", json={"messages": ESSAY, "max_tokens": 1})
    engine.last_cancelled_tokens = -1  # set again only when a generation is cancelled
    # the client gives up (its read timeout only triggers the disconnect; nothing is timed)
    with httpx.Client(base_url=api.url, timeout=httpx.Timeout(120, read=1.0)) as impatient, \
            pytest.raises(httpx.ReadTimeout):
        impatient.post("/v1/chat/completions",
                       json={"messages": ESSAY, "max_tokens": 1500, "temperature": 0})
    wait_until(lambda: engine.worker.queue_depth == 0, "the worker to be free")
    assert 0 <= engine.last_cancelled_tokens < 1500


def test_full_queue_is_a_503_with_retry_after(tmp_path: Path) -> None:
    # one request decoding (kv_slots=1) and one waiting (max_queue=1): the third is refused
    settings = server_settings(tmp_path / "home", max_queue=1, kv_slots=1)
    with running_server(settings) as server:
        long = {"messages": ESSAY, "max_tokens": 1500, "stream": True, "temperature": 0}
        second: dict[str, object] = {}

        def queued_request() -> None:
            with httpx.Client(base_url=server.url, timeout=300) as http2, \
                    http2.stream("POST", "/v1/chat/completions", json=long) as response:
                second["status"] = response.status_code
                second["chunks"] = content_chunks(response.iter_lines(), 1)

        with httpx.Client(base_url=server.url, timeout=120) as http:
            with http.stream("POST", "/v1/chat/completions", json=long) as running:
                # keep the line iterator referenced: dropping it closes the connection
                lines = running.iter_lines()
                assert content_chunks(lines, 1) == 1  # generating now
                waiter = threading.Thread(target=queued_request, daemon=True)
                waiter.start()
                wait_until(lambda: depth(server) == 2, "one running and one queued request")
                full = http.post("/v1/chat/completions",
                                 json={"messages": ESSAY, "max_tokens": 2})
                assert full.status_code == 503
                assert full.headers["Retry-After"] == "1"
                error = full.json()["error"]
                assert error["code"] == "overloaded" and error["type"] == "server_error"
                with pytest.raises(openai.InternalServerError) as info:
                    server.client().chat.completions.create(
                        model="smollm2", messages=ESSAY, max_tokens=2)  # type: ignore[arg-type]
                assert info.value.status_code == 503
                del lines
            # the first stream is closed: the queued request runs
            waiter.join(timeout=300)
        assert second == {"status": 200, "chunks": 1}


async def test_simultaneous_clients_get_their_own_answers(api: RunningServer) -> None:
    prompts = ["Name a fruit.", "What is 2 plus 2?", "Tell me about rain."]
    client = api.async_client()

    async def solo(i: int) -> str:
        completion = await client.chat.completions.create(
            model="smollm2", max_tokens=6, temperature=0, seed=100 + i,
            messages=[{"role": "user", "content": prompts[i]}])
        return completion.choices[0].message.content or ""

    async def streamed(i: int) -> str:
        stream = await client.chat.completions.create(
            model="smollm2", max_tokens=6, temperature=0, seed=100 + i, stream=True,
            messages=[{"role": "user", "content": prompts[i]}])
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    alone = [await solo(i) for i in range(len(prompts))]
    assert len(set(alone)) == len(prompts)  # different prompts, different answers
    together = await asyncio.gather(*(streamed(i) for i in range(len(prompts))),
                                    *(solo(i) for i in range(len(prompts))))
    n = len(prompts)
    assert list(together[:n]) == alone
    assert list(together[n:]) == alone
    await client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_graceful_shutdown_ends_streams_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "OPENWEN_N_CTX": "2048", "OPENWEN_N_THREADS": "2"}
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-c", "from openwen.cli.main import app; app()", "serve",
         "--port", str(port), "--graceful-timeout", "1"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        def healthy() -> bool:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                return httpx.get(url + "/health").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, "the server to start")
        body = {"messages": ESSAY, "max_tokens": 1500, "stream": True, "temperature": 0}
        with httpx.Client(base_url=url, timeout=120) as http, \
                http.stream("POST", "/v1/chat/completions", json=body) as response:
            lines = response.iter_lines()
            assert content_chunks(lines, 2) == 2
            process.send_signal(signal.SIGTERM)
            rest = list(sse_events(lines))
        assert rest, "the stream was cut without an ending"
        last = rest[-1]
        if last != "[DONE]":  # the answer outlived the grace period: ended with an error event
            assert json.loads(last)["error"]["code"] == "shutting_down"
        assert process.wait(timeout=60) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in (tmp_path / "serve.log").read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
