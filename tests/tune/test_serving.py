"""Serving a derivative: its own model id, its adapter on its requests only, the base weights
loaded once, and a prefix cache of its own."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from serverkit import RunningServer, running_server, server_settings

from conftest import ASK, MARK, Taught
from openwen.engines.kv_store import model_folder

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # may train (session fixture)

MESSAGES = [{"role": "user", "content": ASK}]


async def _read(stream: object) -> str:
    return "".join([c.choices[0].delta.content or "" async for c in stream  # type: ignore
                    if c.choices])


async def _first_then_rest(stream: object) -> tuple[str, object]:
    it = stream.__aiter__()  # type: ignore[attr-defined]
    first = ""
    while not first:
        chunk = await it.__anext__()
        first = (chunk.choices[0].delta.content or "") if chunk.choices else ""
    return first, it


@pytest.fixture(scope="module")
def server(taught: Taught) -> Iterator[RunningServer]:
    with running_server(server_settings(taught.home)) as running:
        yield running


def test_prefix_cache_never_mixes_kv_with_and_without_the_adapter(
        server: RunningServer, taught: Taught) -> None:
    client = server.client()  # the first test on this server: its caches are empty

    def cached(model: str) -> int:
        r = client.chat.completions.create(model=model, messages=MESSAGES, temperature=0,
                                           max_tokens=4)
        details = r.usage.prompt_tokens_details  # type: ignore[union-attr]
        return int(details.cached_tokens or 0) if details else 0

    assert cached("smollm2") == 0
    assert cached("smollm2") > 0  # the base reuses its own prefix
    assert cached("zorblax") == 0  # ...which the derivative never sees
    assert cached("zorblax") > 0
    adapter = taught.home / "derivatives" / "zorblax" / "adapter.gguf"
    base = Path(server.service.registry.store.resolve("smollm2").path)
    root = taught.home / "kvcache"
    assert model_folder(root, base, adapter) != model_folder(root, base)


def test_base_and_derivative_streaming_at_once_keep_their_own_behaviour(
        server: RunningServer) -> None:
    client = server.async_client()

    async def open_stream(model: str) -> object:
        return await client.chat.completions.create(
            model=model, messages=MESSAGES, stream=True, temperature=0, max_tokens=40)

    async def both(outer: str, inner: str) -> dict[str, str]:
        first, rest = await _first_then_rest(await open_stream(outer))
        # the outer stream is open and mid-answer while the inner one runs to its end
        inner_text = await _read(await open_stream(inner))
        outer_text = first + "".join([c.choices[0].delta.content or "" async for c in rest
                                      if c.choices])  # type: ignore[attr-defined]
        return {outer: outer_text, inner: inner_text}

    async def run() -> list[dict[str, str]]:
        return [await both("zorblax", "smollm2"), await both("smollm2", "zorblax")]

    for answers in asyncio.run(run()):
        assert MARK in answers["zorblax"]
        assert MARK not in answers["smollm2"]

    registry = server.service.registry
    engines = {e.name: e for e in registry.loaded()}
    assert set(engines) == {"smollm2", "zorblax"}
    assert engines["smollm2"]._model is engines["zorblax"]._model  # one copy of the weights
    assert len(registry.weights) == 1
    models = {m.id: m for m in server.client().models.list().data}
    assert "zorblax" in models and "smollm2" in models


def test_the_other_dialects_serve_the_derivative_by_name(server: RunningServer) -> None:
    import anthropic
    import ollama

    said = anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0).messages
    reply = said.create(model="zorblax", max_tokens=40, extra_body={"temperature": 0},
                        messages=[{"role": "user", "content": ASK}])
    assert MARK in "".join(b.text for b in reply.content if b.type == "text")
    chat = ollama.Client(host=server.url).chat(
        model="zorblax", messages=[{"role": "user", "content": ASK}],
        options={"temperature": 0, "num_predict": 40})
    assert MARK in (chat.message.content or "")
    tags = [m.model for m in ollama.Client(host=server.url).list().models]
    assert "zorblax" in tags


def test_the_simple_engine_applies_the_adapter_too(taught: Taught, bundled_model: Path) -> None:
    from openwen.engines.llamacpp import LlamaCppEngine
    from openwen.messages import Done, Message, TextDelta
    from openwen.requests import ChatRequest, Sampling

    adapter = taught.home / "derivatives" / "zorblax" / "adapter.gguf"
    engine = LlamaCppEngine(bundled_model, name="zorblax", n_ctx=1024, n_threads=2,
                            adapter=adapter)
    request = ChatRequest(messages=(Message(role="user", content=ASK),), max_tokens=40,
                          sampling=Sampling(temperature=0.0))

    async def answer() -> str:
        text = ""
        async for event in engine.stream(request):
            if isinstance(event, TextDelta):
                text += event.text
            assert not isinstance(event, Exception)
            if isinstance(event, Done):
                break
        await engine.aclose()
        return text

    assert MARK in asyncio.run(answer())
