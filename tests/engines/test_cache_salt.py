"""The per-request cache salt: one user's cached prefix never serves another (issue 10, finding 11).

User A's secret prompt, cached in the live KV cache, in RAM or on disk, gives user B no hit
(``cached_tokens`` 0, so B learns nothing), while A keeps hitting on their own prompts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openwen.cache_salt import cache_salt_for
from openwen.engines.batched import BatchedEngine
from openwen.engines.kv_slots import common_prefix, salt_tag
from openwen.engines.kv_store import KVStore, key_tag
from openwen.messages import Done, Message
from openwen.requests import ChatRequest, Sampling

SECRET = ("My bank PIN is 4921 and my recovery phrase is orange tractor seven lantern. "
          "Keep it safe. " + " ".join(f"Note {i}: the vault code part {i} is {i * 37 % 101}."
                                      for i in range(8)))
A, B = cache_salt_for(1), cache_salt_for(2)


def request(salt: str | None, text: str = SECRET, **kw: Any) -> ChatRequest:
    return ChatRequest(messages=(Message("system", "You are a helpful assistant."),
                                 Message("user", text)),
                       sampling=Sampling(temperature=0.0), max_tokens=4, cache_salt=salt, **kw)


async def usage(engine: Any, req: ChatRequest) -> tuple[int, int]:
    done = [e async for e in engine.stream(req)][-1]
    assert isinstance(done, Done)
    return done.usage.cached_tokens, done.usage.prompt_tokens


def prompt_of(engine: Any, req: ChatRequest) -> list[int]:
    return list(engine.tokenize(engine.render(req).text))


def make(model: Path, **kw: Any) -> BatchedEngine:
    kw = {"name": "smollm2", "n_ctx": 2048, "n_threads": 2, "kv_slots": 2, "kv_cells": 4096,
          **kw}
    return BatchedEngine(model, **kw)


def test_salts_are_per_user() -> None:
    assert cache_salt_for(None) is None
    assert A != B and A == cache_salt_for(1)
    assert salt_tag(None) == "" and salt_tag(A) != salt_tag(B)


async def test_live_cache_is_partitioned_by_salt(bundled_model: Path) -> None:
    engine = make(bundled_model, kv_ram_mb=0, kv_slots=4)  # no store: prefixes stay live
    try:
        assert (await usage(engine, request(A)))[0] == 0
        cached, n_prompt = await usage(engine, request(A))
        assert cached == n_prompt - 1  # A hits on A's own prompt
        assert (await usage(engine, request(B)))[0] == 0  # B gets nothing of A's
        assert (await usage(engine, request(None)))[0] == 0  # nor does an unsalted request
        again, _ = await usage(engine, request(B))
        assert again == n_prompt - 1  # B now hits on B's own copy
        # a shared beginning (the system prompt) is not copied across salts either
        cached_c, _ = await usage(engine, request(cache_salt_for(3), "Hello there"))
        assert cached_c == 0
        cached_a, _ = await usage(engine, request(A, "Hello there"))
        assert cached_a > 0  # A's own system prompt is shared with A's other chats
    finally:
        await engine.aclose()


async def test_saved_states_in_ram_and_on_disk_keep_their_salt(bundled_model: Path,
                                                                tmp_path: Path) -> None:
    folder = tmp_path / "kv"
    engine = make(bundled_model, kv_cache_dir=folder, kv_disk_min_tokens=16)
    try:
        await usage(engine, request(A))
        # another conversation runs: A's sequence goes to the RAM tier
        await usage(engine, request(B, "What is the capital of France?"))
        await usage(engine, request(B, "Name three colours of the rainbow."))
        assert engine.kv_state()["saved_states"] >= 1
        # B hits only what B's own chats share with it (the system prompt), none of A's secret
        own = common_prefix(prompt_of(engine, request(B)),
                            prompt_of(engine, request(B, "Name three colours of the rainbow.")))
        assert (await usage(engine, request(B)))[0] == own < 20
    finally:
        await engine.aclose()  # RAM states go to disk
    tags = {key_tag(p.stem) for p in folder.rglob("*.kv")}
    assert salt_tag(A) in tags and salt_tag(B) in tags
    engine = make(bundled_model, kv_cache_dir=folder, kv_disk_min_tokens=16)
    try:
        assert (await usage(engine, request(cache_salt_for(3))))[0] == 0
        cached, n_prompt = await usage(engine, request(A))
        assert cached >= n_prompt - 8  # A's state came back from disk
        assert engine.kv_state()["loads"] >= 1
    finally:
        await engine.aclose()


def test_store_matches_only_the_same_tag(tmp_path: Path) -> None:
    import ctypes

    store = KVStore(ram_bytes=1 << 20)
    data = (ctypes.c_uint8 * 8)()
    store.put([1, 2, 3, 4], data, "aaaa")
    store.put([1, 2, 3], data, "bbbb")  # another tag's shorter prefix does not supersede
    assert len(store) == 2
    hit = store.find([1, 2, 3, 4, 5], tag="aaaa")
    assert hit is not None and hit.match == 4
    hit_b = store.find([1, 2, 3, 4, 5], tag="bbbb")
    assert hit_b is not None and hit_b.match == 3
    assert store.find([1, 2, 3, 4, 5], tag="") is None


async def test_simple_engine_drops_another_salts_prefix(smollm2: Any) -> None:
    await usage(smollm2, request(A))
    cached, n_prompt = await usage(smollm2, request(A))
    assert cached == n_prompt - 1
    assert (await usage(smollm2, request(B)))[0] == 0
    assert (await usage(smollm2, request(A)))[0] == 0  # B's run replaced the cache
    assert (await usage(smollm2, request(A)))[0] == n_prompt - 1
