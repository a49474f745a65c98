"""The batched embedded engine on the real bundled model (SmolLM2-135M-Instruct).

The simple engine's behaviour tests (``test_llamacpp.py``) run here too against a batched engine:
this module overrides their ``smollm2`` fixture. The tests below cover what batching adds.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import test_llamacpp as simple  # the sibling module, imported by its basename like pytest does

from openwen.engines.batched import BatchedEngine
from openwen.engines.kv_slots import CellLedger, common_prefix
from openwen.engines.kv_store import KVStore
from openwen.errors import ContextLengthError, OverloadedError
from openwen.messages import Done, Message, StreamEvent, TextDelta, TokenLogprob
from openwen.requests import ChatRequest, Sampling

GREEDY = Sampling(temperature=0.0, seed=7)
NOTES = "Here are my notes about gardening. " + " ".join(
    f"Plant {i} needs water every {i % 7 + 1} days." for i in range(25))


def make(model: Path, **kw: Any) -> BatchedEngine:
    kw = {"name": "smollm2", "n_ctx": 2048, "n_threads": 2, "kv_slots": 4, "kv_cells": 4096,
          "prefill_chunk": 32, **kw}
    return BatchedEngine(model, **kw)


@pytest.fixture(scope="module")
def batched(bundled_model: Path) -> Iterator[BatchedEngine]:
    engine = make(bundled_model)
    yield engine
    asyncio.run(engine.aclose())


@pytest.fixture(scope="module")
def smollm2(batched: BatchedEngine) -> BatchedEngine:
    """The simple engine's tests, run against the batched engine."""
    return batched


test_streams_text_then_done_with_usage = simple.test_streams_text_then_done_with_usage
test_max_tokens_gives_length = simple.test_max_tokens_gives_length
test_same_seed_same_tokens = simple.test_same_seed_same_tokens
test_stop_string_is_not_emitted = simple.test_stop_string_is_not_emitted
test_cancel_stops_within_a_token = simple.test_cancel_stops_within_a_token
test_json_schema_output_always_parses = simple.test_json_schema_output_always_parses
test_bad_schema_is_invalid_request = simple.test_bad_schema_is_invalid_request
test_logprobs_are_real_probabilities = simple.test_logprobs_are_real_probabilities
test_forced_tool_call_is_well_formed = simple.test_forced_tool_call_is_well_formed


def chat(*messages: Message, **kw: Any) -> ChatRequest:
    kw.setdefault("sampling", GREEDY)
    return ChatRequest(messages=messages, **kw)


def ask(text: str, **kw: Any) -> ChatRequest:
    return chat(Message("user", text), **kw)


async def collect(engine: BatchedEngine, request: ChatRequest) -> list[StreamEvent]:
    return [event async for event in engine.stream(request)]


def text_of(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def done_of(events: list[StreamEvent]) -> Done:
    done = events[-1]
    assert isinstance(done, Done)
    return done


# -- batching ------------------------------------------------------------------------------------

POEMS = [ask(f"Write a short poem about {w}.", max_tokens=24) for w in ("cats", "rain", "the sea")]
TEXTS = [ChatRequest(prompt=p, max_tokens=24, sampling=GREEDY, logprobs=True, top_logprobs=2)
         for p in ("The history of the bicycle begins", "My favourite recipe for soup is",
                   "The three largest planets are", "Dear diary, today I")]
# |logprob difference| of the same token decoded alone or batched; llama.cpp's kernels round
# differently with batch size and cell placement (measured up to ~0.42 on SmolLM2-135M Q4_1)
BOUND = 1.0


def logprobs_of(events: list[StreamEvent]) -> list[TokenLogprob]:
    return [lp for e in events if isinstance(e, TextDelta) for lp in e.logprobs]


def assert_consistent(alone: list[TokenLogprob], other: list[TokenLogprob]) -> int:
    """The same tokens with log-probabilities within BOUND, until a near-tie flips to the
    runner-up; the number of tokens that agree."""
    for i, (x, y) in enumerate(zip(alone, other, strict=False)):
        if x.token != y.token:
            assert y.token == x.top[1][0], f"token {i}: {y.token!r} is not {x.token!r}'s runner-up"
            assert x.top[0][1] - x.top[1][1] < 2 * BOUND
            return i
        assert abs(x.logprob - y.logprob) < BOUND, f"token {i}: {x.logprob} vs {y.logprob}"
    return min(len(alone), len(other))


def assert_continues_alike(one: list[TokenLogprob], other: list[TokenLogprob]) -> None:
    """Two runs of one prompt (say, read fresh and resumed from saved state) agree for three
    tokens or, where a near-tie flips sooner (the kernels sum a cached prefix in another order:
    seen on an AMX CPU, "Plant" -1.33 vs "The" -1.29 as the first token), give the same
    candidates the same log-probabilities (within BOUND) at the token where they part."""
    agreed = assert_consistent(one, other)
    if agreed >= 3:
        return
    x, y = dict(one[agreed].top), dict(other[agreed].top)
    shared = x.keys() & y.keys()
    assert len(shared) == 2, f"token {agreed}: candidates {list(x)} vs {list(y)}"
    for token in shared:
        assert abs(x[token] - y[token]) < BOUND, f"token {agreed}: {token!r} {x[token]}, {y[token]}"


async def test_concurrent_streams_match_their_solo_runs(batched: BatchedEngine) -> None:
    """Each stream gets its own tokens: decoded together they follow their solo runs."""
    alone = [logprobs_of(await collect(batched, r)) for r in TEXTS]
    together = await asyncio.gather(*(collect(batched, r) for r in TEXTS))
    agreed = [assert_consistent(a, logprobs_of(t)) for a, t in zip(alone, together, strict=True)]
    assert sum(agreed) >= len(TEXTS) * 24 // 2  # near-ties are rare: most tokens agree
    assert len({"".join(x.token for x in a) for a in alone}) == len(TEXTS)
    assert all(sum(isinstance(e, Done) for e in events) == 1 for events in together)


async def test_seeded_sampling_repeats_alone_and_stays_close_in_a_batch(
        batched: BatchedEngine) -> None:
    seeded = ChatRequest(prompt="Once upon a time", max_tokens=16, logprobs=True, top_logprobs=2,
                         sampling=Sampling(temperature=0.9, seed=99))
    first = logprobs_of(await collect(batched, seeded))
    assert logprobs_of(await collect(batched, seeded)) == first
    *_, inside = await asyncio.gather(*(collect(batched, r) for r in TEXTS[:3]),
                                      collect(batched, seeded))
    agreed = 0
    for x, y in zip(first, logprobs_of(inside), strict=False):
        if x.token != y.token:
            break  # the same random draw fell on the other side of a shifted boundary
        assert abs(x.logprob - y.logprob) < BOUND
        agreed += 1
    assert agreed >= 1


async def test_new_request_streams_while_others_keep_streaming(batched: BatchedEngine) -> None:
    seen: dict[str, list[str]] = {"a": [], "b": [], "new": []}
    log: list[str] = []

    async def run(key: str, request: ChatRequest, started: asyncio.Event | None = None) -> None:
        async for event in batched.stream(request):
            if isinstance(event, TextDelta):
                seen[key].append(event.text)
                log.append(key)
                if started is not None and len(seen[key]) == 2:
                    started.set()

    started = asyncio.Event()
    long = [ask(f"Write a long essay about {w}.", max_tokens=120) for w in ("rivers", "trees")]
    first = asyncio.create_task(run("a", long[0], started))
    second = asyncio.create_task(run("b", long[1]))
    await started.wait()
    joined_at = len(log)
    await run("new", ask(NOTES + " Which plant needs the most water?", max_tokens=4))
    await asyncio.gather(first, second)
    new_first = log.index("new")
    # the new prompt (300+ tokens) is read in 32-token chunks between the others' tokens
    assert log[joined_at:new_first].count("a") >= 3
    assert log[joined_at:new_first].count("b") >= 3
    assert "a" in log[new_first:] and "b" in log[new_first:]


async def test_grammar_under_batching(batched: BatchedEngine) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}},
              "required": ["city"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "c", "schema": schema}}
    json_request = ask("Name a city as JSON.", max_tokens=40, response_format=fmt)
    *poems, answer = await asyncio.gather(*(collect(batched, r) for r in POEMS),
                                          collect(batched, json_request))
    assert isinstance(json.loads(text_of(answer))["city"], str)
    assert all(not text_of(p).lstrip().startswith("{") for p in poems)


STORY = {"type": "object", "properties": {"story": {"type": "string", "minLength": 200}},
         "required": ["story"]}


@pytest.mark.parametrize("sampling", [GREEDY, Sampling(temperature=0.7, seed=11)],
                         ids=["greedy", "seeded"])
async def test_grammar_top_block_chooses_what_the_whole_vocabulary_would(
        batched: BatchedEngine, sampling: Sampling, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a rejection the grammar checks only the highest logits: the same tokens as when it
    filters the whole vocabulary, with rejections on the way (the string may not end early)."""
    from openwen.engines import batch_sampling

    fmt = {"type": "json_schema", "json_schema": {"name": "s", "schema": STORY}}
    request = ask("Write a story about a dragon.", max_tokens=80, response_format=fmt,
                  sampling=sampling)
    worker = batched.worker
    before = worker.grammar_rejections
    fast = text_of(await collect(batched, request))
    assert worker.grammar_rejections > before
    monkeypatch.setattr(batch_sampling.JobSampler, "_top_block", lambda *_: -1)
    assert text_of(await collect(batched, request)) == fast
    assert fast.startswith('{')


async def test_cancelled_request_frees_its_cells_at_once(bundled_model: Path) -> None:
    engine = make(bundled_model, kv_slots=2)
    try:
        request = ask("Write a very long essay about the sea.", max_tokens=400)
        n_prompt = engine.count_tokens(request)
        stream = engine.stream(request)
        deltas = 0
        async for event in stream:
            deltas += isinstance(event, TextDelta)
            if deltas == 5:
                break
        await stream.aclose()  # type: ignore[attr-defined]
        state = engine.kv_state()  # runs between steps: the cancel was seen before it
        slot = next(s for s in state["slots"] if s["tokens"])
        assert not slot["busy"]
        # the answer's cells are gone; the prompt stays as an evictable cached prefix
        assert slot["tokens"] == slot["cells_in_llama"] == n_prompt
        assert state["used_cells"] == n_prompt
        assert engine.worker.queue_depth == 0
    finally:
        await engine.aclose()


async def test_failed_request_frees_its_cells_and_the_others_go_on(
        bundled_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A request failing mid-answer (here its output parser raises) ends with that error; its
    sequence's cells are freed at once and the requests beside it are unaffected."""
    from openwen.engines.decoding import OutputDecoder

    add = OutputDecoder.add

    def fragile(self: OutputDecoder, token: int, logits: Any = None) -> list[StreamEvent]:
        if getattr(self, "doomed", False) and getattr(self, "n", 0) >= 3:
            raise RuntimeError("parser broke")
        self.n = getattr(self, "n", 0) + 1  # type: ignore[attr-defined]
        return add(self, token, logits)

    monkeypatch.setattr(OutputDecoder, "add", fragile)
    engine = make(bundled_model, kv_slots=2)
    prepare = engine._prepare

    def doom(request: ChatRequest, *args: Any) -> Any:
        job = prepare(request, *args)
        job.decoder.doomed = request.max_tokens == 99  # type: ignore[attr-defined]
        return job

    engine._prepare = doom  # type: ignore[method-assign]
    try:
        healthy = asyncio.create_task(collect(engine, ask("Count to twenty.", max_tokens=30)))
        with pytest.raises(RuntimeError, match="parser broke"):
            await collect(engine, ask("Write a long story.", max_tokens=99))
        assert done_of(await healthy).usage.completion_tokens >= 10
        state = engine.kv_state()
        assert [s["busy"] for s in state["slots"]] == [False, False]
        # only the healthy request's conversation is left; the failed one's cells are gone
        assert state["used_cells"] == sum(s["cells_in_llama"] for s in state["slots"])
        assert sorted(s["cells_in_llama"] > 0 for s in state["slots"]) == [False, True]
        assert engine.worker.queue_depth == 0
    finally:
        await engine.aclose()


async def test_overloaded_when_the_queue_is_full(bundled_model: Path) -> None:
    engine = make(bundled_model, kv_slots=1, max_queue=1)
    try:
        running = engine.stream(ask("Write a long story about a dragon.", max_tokens=200))
        await anext(running)  # type: ignore[call-overload]
        waiting = asyncio.create_task(collect(engine, ask("hi", max_tokens=2)))
        while engine.worker.queue_depth < 2:
            await asyncio.sleep(0.01)
        with pytest.raises(OverloadedError):
            await collect(engine, ask("hello", max_tokens=2))
        await running.aclose()  # type: ignore[attr-defined]
        assert done_of(await waiting).usage.completion_tokens >= 1
    finally:
        await engine.aclose()


async def test_prompt_longer_than_context_states_both_lengths(bundled_model: Path) -> None:
    engine = make(bundled_model, n_ctx=256, kv_cells=256)
    try:
        with pytest.raises(ContextLengthError) as info:
            await collect(engine, ask("word " * 400))
        assert "256" in info.value.message
        assert str(info.value.prompt_tokens) in info.value.message
        assert info.value.prompt_tokens > 256
        assert done_of(await collect(engine, ask("hi", max_tokens=2))).usage.prompt_tokens > 0
    finally:
        await engine.aclose()


# -- prefix cache --------------------------------------------------------------------------------


async def test_next_turn_reuses_the_conversation_after_another_ran(bundled_model: Path) -> None:
    engine = make(bundled_model, kv_slots=2)
    try:
        first = ask(NOTES + " Summarize.", max_tokens=12)
        answer = await collect(engine, first)
        assert done_of(answer).usage.cached_tokens == 0
        await collect(engine, ask("What is the capital of France?", max_tokens=8))
        # the idle conversation left the live cache when the other request came in
        state = engine.kv_state()
        assert state["offloads"] == 1
        assert max(s["tokens"] for s in state["slots"]) < done_of(answer).usage.prompt_tokens
        follow_up = chat(*first.messages, Message("assistant", text_of(answer)),
                         Message("user", "Which plant needs water most often?"), max_tokens=8)
        usage = done_of(await collect(engine, follow_up)).usage
        assert usage.cached_tokens >= done_of(answer).usage.prompt_tokens
        assert usage.prompt_tokens - usage.cached_tokens < 40
        assert engine.kv_state()["loads"] == 1
    finally:
        await engine.aclose()


async def test_shared_system_prompt_is_copied_not_recomputed(bundled_model: Path) -> None:
    engine = make(bundled_model, kv_slots=3)
    try:
        system = Message("system", "You are a gardener's assistant.")
        long = chat(system, Message("user", NOTES + " Summarize."), max_tokens=4)
        short = chat(system, Message("user", "Say hi."), max_tokens=4)
        n_system = common_prefix_length(engine, long, short)
        await collect(engine, long)
        usage = done_of(await collect(engine, short)).usage
        assert usage.cached_tokens == n_system  # shared cells (llama_memory_seq_cp)
        again = done_of(await collect(engine, long)).usage
        assert again.cached_tokens == again.prompt_tokens - 1
    finally:
        await engine.aclose()


async def test_without_a_store_idle_conversations_stay_live(bundled_model: Path) -> None:
    engine = make(bundled_model, kv_slots=3, kv_ram_mb=0)
    try:
        first = ask(NOTES + " Summarize.", max_tokens=4)
        n_first = done_of(await collect(engine, first)).usage.prompt_tokens
        await collect(engine, ask("What is the capital of France?", max_tokens=4))
        state = engine.kv_state()
        assert state["offloads"] == 0
        assert max(s["tokens"] for s in state["slots"]) >= n_first
        again = done_of(await collect(engine, first)).usage
        assert again.cached_tokens == again.prompt_tokens - 1
    finally:
        await engine.aclose()


async def test_saved_state_gives_the_same_continuation(bundled_model: Path,
                                                       tmp_path: Path) -> None:
    """A conversation moved out to RAM, and one written to disk at shutdown, resume without
    re-reading its history and continue as a fresh engine would."""
    kw = {"kv_cache_dir": tmp_path, "kv_disk_min_tokens": 64}
    first = ask(NOTES + " Summarize.", max_tokens=10)
    probe = {"max_tokens": 10, "logprobs": True, "top_logprobs": 2}
    engine = make(bundled_model, **kw)
    try:
        answer = text_of(await collect(engine, first))
        follow_up = chat(*first.messages, Message("assistant", answer),
                         Message("user", "Name the plant that needs water most often."), **probe)
        fresh = make(bundled_model, name="fresh", kv_slots=1, kv_ram_mb=0)
        try:
            expected = await collect(fresh, follow_up)  # never cached anywhere
        finally:
            await fresh.aclose()
        await collect(engine, ask("What is 2+2?", max_tokens=4))  # moves the chat out to RAM
        resumed = await collect(engine, follow_up)
        usage = done_of(resumed).usage
        assert engine.kv_state()["loads"] == 1
        assert usage.prompt_tokens - usage.cached_tokens < 40
        assert_continues_alike(logprobs_of(expected), logprobs_of(resumed))
    finally:
        await engine.aclose()
    assert len(list(tmp_path.rglob("*.kv"))) == 1  # the short chat stayed under 64 tokens
    restarted = make(bundled_model, **kw)
    try:
        again = await collect(restarted, follow_up)
        assert done_of(again).usage.cached_tokens == done_of(again).usage.prompt_tokens - 1
        assert restarted.kv_state()["loads"] == 1
        assert_continues_alike(logprobs_of(resumed), logprobs_of(again))
    finally:
        await restarted.aclose()


def common_prefix_length(engine: BatchedEngine, a: ChatRequest, b: ChatRequest) -> int:
    ta, tb = (engine.tokenize(engine.render(r).text) for r in (a, b))
    return next(i for i, (x, y) in enumerate(zip(ta, tb, strict=False)) if x != y)


# -- the cache's bookkeeping, without a model ------------------------------------------------------


def buffer(n: int, fill: int) -> ctypes.Array[ctypes.c_uint8]:
    return (ctypes.c_uint8 * n)(*([fill] * n))


def test_common_prefix() -> None:
    assert common_prefix([1, 2, 3, 4], [1, 2, 9]) == 2
    assert common_prefix([1, 2], [1, 2, 3]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix([5] * 1000 + [1], [5] * 1000 + [2]) == 1000
    assert common_prefix([7, 1], [8, 1]) == 0


def test_shared_cells_count_once() -> None:
    ledger = CellLedger(100)
    a = ledger.alloc(10)
    ledger.share(a[:4])  # a second sequence holds a copy of the first four
    assert ledger.used == 10 and ledger.free == 90
    ledger.release(a)
    assert ledger.used == 4
    ledger.release(a[:4])
    assert ledger.used == 0


def test_store_keeps_longest_prefix_and_supersedes_earlier_turns(tmp_path: Path) -> None:
    store = KVStore(ram_bytes=1000)
    store.put([1, 2, 3], buffer(10, 1))
    store.put([1, 2, 3, 4, 5], buffer(10, 2))  # the same chat one turn later
    store.put([1, 9], buffer(10, 3))
    assert len(store) == 2
    hit = store.find([1, 2, 3, 4, 7])
    assert hit is not None and hit.match == 4 and hit.state.tokens == [1, 2, 3, 4, 5]
    assert store.find([1, 2, 3, 4, 7], longer_than=4) is None
    data = store.read(hit.state)
    assert data is not None and bytes(data) == bytes([2] * 10)


def test_store_moves_long_states_to_disk_and_drops_short_ones(tmp_path: Path) -> None:
    store = KVStore(ram_bytes=25, folder=tmp_path, disk_bytes=1000, disk_min_tokens=3)
    store.put([1, 2, 3, 4], buffer(10, 1))
    store.put([5, 6], buffer(10, 2))
    store.put([7, 8, 9], buffer(10, 3))  # RAM holds 25 bytes: the oldest leaves for disk
    assert store.ram_used == 20
    assert [p.name.endswith(".kv") for p in tmp_path.glob("*.kv")] == [True]
    store.put([10, 11], buffer(10, 4))  # [5, 6] is too short for disk: dropped
    assert store.find([5, 6]) is None
    reopened = KVStore(ram_bytes=0, folder=tmp_path, disk_bytes=1000, disk_min_tokens=3)
    hit = reopened.find([1, 2, 3, 4, 5])
    assert hit is not None and hit.match == 4
    data = reopened.read(hit.state)
    assert data is not None and bytes(data) == bytes([1] * 10)


def test_store_disk_cap_drops_least_recently_used(tmp_path: Path) -> None:
    store = KVStore(ram_bytes=0, folder=tmp_path, disk_bytes=25, disk_min_tokens=1)
    for i in range(4):
        store.put([i, i], buffer(10, i))
    assert len(list(tmp_path.glob("*.kv"))) == 2
    assert store.find([3, 3]) is not None and store.find([0, 0]) is None
