"""Where the batched engine's owner thread spends a step outside ``llama_decode``, per component.

Runs openwen's :class:`BatchedEngine` in this process with N concurrent greedy requests (the
prompts of ``bench/concurrency.py``) and wraps the step loop's parts with timers (wall and thread
CPU time): scheduling (``_admit``, ``_drop_cancelled``, the prefix cache), ``llama_decode``, the
logits view, the greedy argmax, each sequence's ``_sampled`` (of which ``decoder.add``:
detokenising, stop strings, the output parser), the hand-off to the event loop (``_flush``), the
thread tuner. Times are inclusive (``_step`` holds ``decode`` and ``_sample_all``, which holds
``_sampled``), in microseconds per step; the wrappers add ~1 us per call.

    flock /tmp/openwen-bench.lock .venv/bin/python bench/step_profile.py [--streams 4]
        [--tokens 96] [--rounds 2] [--threads 2] [--tuner] [--omp-spin]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from concurrency import N_CTX, story  # noqa: E402
from servers import machine, omp_policy  # noqa: E402

from openwen.engines import batch_scheduler, decoding  # noqa: E402
from openwen.engines.batched import BatchedEngine  # noqa: E402
from openwen.messages import Done, Message  # noqa: E402
from openwen.models.store import bundled_model_path  # noqa: E402
from openwen.requests import ChatRequest, Sampling  # noqa: E402

WALL: collections.Counter[str] = collections.Counter()
CPU: collections.Counter[str] = collections.Counter()
CALLS: collections.Counter[str] = collections.Counter()


def timed(owner: Any, name: str, label: str | None = None) -> None:
    """Replace ``owner.name`` with a wrapper adding its wall and CPU time under ``label``."""
    fn = getattr(owner, name)
    key = label or name
    wall, cpu = time.perf_counter, time.thread_time

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        w, c = wall(), cpu()
        try:
            return fn(*args, **kwargs)
        finally:
            WALL[key] += wall() - w
            CPU[key] += cpu() - c
            CALLS[key] += 1

    setattr(owner, name, wrapper)


def instrument(engine: BatchedEngine) -> None:
    cls = batch_scheduler.BatchScheduler
    for name in ("_drop_cancelled", "_run_calls", "_admit", "_step", "_sample_all", "_sampled",
                 "_emit", "_flush", "_finish"):
        timed(cls, name)
    timed(decoding.OutputDecoder, "add", "decoder.add")
    timed(batch_scheduler, "greedy_tokens")
    w = engine.worker
    timed(w.cache, "offload_idle")
    timed(w.cache, "make_room")
    timed(w.cache.table, "append", "table.append")
    timed(w.ctx, "decode")
    timed(w.ctx, "output_logits")
    timed(w.threads, "before", "tuner.before")
    timed(w.threads, "after", "tuner.after")


def burst(engine: BatchedEngine, n: int, tokens: int, round_: int) -> tuple[float, int]:
    async def one(i: int) -> int:
        request = ChatRequest(messages=(Message("user", story(i, round_)),),
                              sampling=Sampling(temperature=0.0, seed=0), max_tokens=tokens)
        done = [e async for e in engine.stream(request)][-1]
        assert isinstance(done, Done)
        return done.usage.completion_tokens

    async def run() -> tuple[float, int]:
        start = time.perf_counter()
        produced = await asyncio.gather(*(one(i) for i in range(n)))
        return time.perf_counter() - start, sum(produced)

    return asyncio.run(run())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=96)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tuner", action="store_true", help="thread tuner on (as in a server)")
    ap.add_argument("--omp-spin", action="store_true")
    args = ap.parse_args()
    omp_policy(args.omp_spin)
    engine = BatchedEngine(bundled_model_path(), name="smollm2", n_ctx=N_CTX,
                           n_threads=args.threads, kv_slots=max(8, args.streams),
                           kv_cells=N_CTX * 2, kv_ram_mb=0, adaptive_threads=args.tuner)
    instrument(engine)
    w = engine.worker
    try:
        table = engine.cache.table
        for r in range(args.rounds):
            w.call(lambda: [table.clear(s) for s in table.slots])
            WALL.clear(), CPU.clear(), CALLS.clear()
            steps0, busy0, decode0 = w.steps, w.busy_seconds, w.decode_seconds
            wall, produced = burst(engine, args.streams, args.tokens, r)
            steps = max(1, w.steps - steps0)
            outside = (w.busy_seconds - busy0 - (w.decode_seconds - decode0)) / steps * 1e6
            print(f"round {r + 1}: {args.streams} streams, {produced / wall:.1f} tok/s, {steps} "
                  f"steps, outside llama_decode {outside:.0f} us/step (owner thread); "
                  f"{machine()}")
            for key, seconds in WALL.most_common():
                print(f"  {key:<16}{seconds / steps * 1e6:9.1f} us/step wall "
                      f"{CPU[key] / steps * 1e6:9.1f} cpu  ({CALLS[key]} calls)")
    finally:
        asyncio.run(engine.aclose())


if __name__ == "__main__":
    main()
