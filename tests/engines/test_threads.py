"""The thread tuner: all threads on a quiet machine, one while other processes take the cores.

The logic runs against a simulated machine (step times per thread count and phase, like those
measured in bench/README.md); the last test runs it inside the real batched engine.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from openwen.engines import threads
from openwen.engines.batched import BatchedEngine
from openwen.engines.threads import (
    CHECK_STEPS,
    MAX_INTERVAL,
    PROBE_MAX_TOKENS,
    PROBE_STEPS,
    ThreadTuner,
)
from openwen.messages import Done, Message, TextDelta
from openwen.requests import ChatRequest, Sampling

QUIET = {2: 0.010, 1: 0.016}  # seconds a decode step: two threads ~1.6x faster
BUSY = {2: 0.150, 1: 0.020}  # another process on a core: the two-thread barrier stalls


class Machine:
    """Runs ``steps`` evaluations through a tuner; records the thread count of each."""

    def __init__(self, threads: int = 2, adaptive: bool = True) -> None:
        self.applied: list[int] = []
        self.tuner = ThreadTuner(self.applied.append, threads, adaptive=adaptive)
        self.used: list[int] = []

    def run(self, steps: int, times: dict[int, float], n_tokens: int = 1,
            prompt: bool = False) -> None:
        for _ in range(steps):
            self.tuner.before(n_tokens, prompt=prompt)
            threads = self.applied[-1] if self.applied else self.tuner.threads
            self.used.append(threads)
            self.tuner.after(n_tokens, times[threads], prompt=prompt)


def test_a_quiet_machine_keeps_every_thread_and_probes_less_and_less() -> None:
    m = Machine()
    m.run(5000, QUIET)
    assert m.tuner.current == 2 and m.tuner.switches == 0
    assert m.used.count(1) / len(m.used) < 0.01  # the probes cost under 1% of the steps
    assert m.tuner.interval == MAX_INTERVAL
    assert m.used[-200:].count(2) == 200


def test_contention_drops_to_one_thread_within_a_few_steps() -> None:
    m = Machine()
    m.run(3000, QUIET)
    start = len(m.used)
    m.run(200, BUSY)
    after = m.used[start:]
    assert m.tuner.current == 1
    first_single = after.index(1)
    assert first_single <= 4  # a run of slow steps probes at once, not after the long interval
    # then the check on two threads (the probe's yardstick) and later probes only
    assert after[first_single + PROBE_STEPS:].count(2) <= CHECK_STEPS + PROBE_STEPS * 2


def test_back_to_every_thread_when_the_cores_are_free_again() -> None:
    m = Machine()
    m.run(100, QUIET)
    m.run(3000, BUSY)
    assert m.tuner.current == 1
    start = len(m.used)
    m.run(MAX_INTERVAL + 2 * PROBE_STEPS, QUIET)
    assert m.tuner.current == 2
    assert m.used[-1] == 2 and start < len(m.used)


def test_sizes_are_compared_with_their_own_kind() -> None:
    """A long prompt chunk is not a slow-down of one-token steps."""
    m = Machine()
    m.run(500, QUIET)
    m.run(3, {2: 0.5, 1: 0.8}, n_tokens=256)  # three prompt chunks: slow, but not a jump
    m.run(500, QUIET)
    assert m.tuner.current == 2 and m.tuner.switches == 0


def test_prompt_chunks_are_never_probed() -> None:
    """A cold prefill (many 512-token steps) keeps every thread; the probe due waits for the
    next decode step."""
    m = Machine()
    m.run(7, QUIET)
    start = len(m.used)
    m.run(40, {2: 2.0, 1: 3.5}, n_tokens=512)
    assert set(m.used[start:]) == {2} and m.tuner.probes == 0
    m.run(PROBE_STEPS, QUIET)
    assert m.tuner.probes == 1 and m.used[-PROBE_STEPS:] == [1] * PROBE_STEPS
    assert PROBE_MAX_TOKENS < 512


def test_a_probe_is_compared_with_the_steps_right_after_it() -> None:
    """Step cost grows with the context: a long conversation's two-thread steps are no yardstick
    for a one-thread probe during a short one (the next turn after another chat ran used to be
    read on one thread, twice as slow)."""
    long_chat = {2: 0.060, 1: 0.096}  # ~4,000 tokens of context
    short_chat = {2: 0.020, 1: 0.032}  # ~1,000
    m = Machine()
    m.run(30, long_chat)
    while m.tuner._probe_left:  # the long chat's own probes are over
        m.run(1, long_chat)
    m.run(1, {2: 3.0, 1: 4.5}, n_tokens=512)  # the short chat's prompt
    m.tuner._since = m.tuner.interval  # a probe is due: it lands on the short chat's first steps
    m.run(1, short_chat)
    m.run(200, short_chat)
    assert m.tuner.probes >= 1 and m.tuner.switches == 0 and m.tuner.current == 2


def test_short_prompts_are_never_probed_either() -> None:
    """A prompt short enough to be read in one small step (a new chat's first turn) keeps every
    thread even when a probe is due or under way: probing it would delay its first token."""
    m = Machine()
    m.run(7, QUIET)
    start = len(m.used)
    m.run(5, {2: 0.14, 1: 0.21}, n_tokens=45, prompt=True)  # due after 8 steps: not here
    m.run(3, QUIET, n_tokens=3, prompt=True)  # a decode token plus a 2-token prompt chunk
    assert set(m.used[start:]) == {2} and m.tuner.probes == 0
    m.run(1, QUIET)  # the next decode-only step probes
    assert m.tuner.probes == 1 and m.used[-1] == 1
    mid = len(m.used)
    m.run(2, QUIET, n_tokens=45, prompt=True)  # mid-probe: the prompt steps keep every thread
    assert m.used[mid:] == [2, 2]
    m.run(PROBE_STEPS - 1, QUIET)  # ... and the probe resumes on decode steps
    assert m.used[-(PROBE_STEPS - 1):] == [1] * (PROBE_STEPS - 1)
    assert m.tuner.current == 2 and m.tuner.switches == 0


def test_fixed_threads_never_change() -> None:
    for m in (Machine(adaptive=False), Machine(threads=1)):
        m.run(2000, BUSY)
        assert m.applied == [] and m.tuner.current == m.tuner.threads


async def test_the_engine_switches_threads_between_steps_and_answers(
        bundled_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "FIRST_INTERVAL", 2)  # probe again soon after a switch too
    engine = BatchedEngine(bundled_model, name="smollm2", n_ctx=1024, n_threads=2, kv_slots=2)
    try:
        tuner = engine.worker.threads
        tuner.interval = 2  # probe at once: each probe sets one thread, then two again
        request = ChatRequest(messages=(Message("user", "Count from 1 to 30."),), max_tokens=40,
                              sampling=Sampling(temperature=0.0, seed=1))
        text, done = "", None
        async for event in engine.stream(request):
            if isinstance(event, TextDelta):
                text += event.text
            elif isinstance(event, Done):
                done = event
        assert done is not None and done.usage.completion_tokens == 40 and text.strip()
        assert tuner.probes >= 2
        assert tuner.describe()["threads"] in (1, 2)
    finally:
        await asyncio.wait_for(engine.aclose(), 60)
