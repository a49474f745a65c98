"""Prompt reading in process: the sweep that chose the batched engine's prefill chunking.

Raw llama.cpp through openwen's :class:`~openwen.engines.batch_native.NativeContext` (the
context the batched engine uses: unified KV cache of ``--cells`` cells, 8 sequences), bundled
SmolLM2-135M Q4_1, the same threads throughout. Two measurements, rounds interleaved (round 1 of
every configuration, then round 2, ..., each round starting one configuration later; the best of
``--rounds`` counts):

1. **cold prefill**: a ~``--prompt``-token prompt read alone, ``n_batch`` tokens per
   ``llama_decode`` (as the scheduler does when nobody else runs), for each
   ``n_batch``/``n_ubatch``/flash-attention setting in ``CONFIGS``; tokens/s;
2. **joining**: three sequences decode one token per step while a ~300-token prompt is read
   ``chunk`` tokens per step alongside (the scheduler's ``prefill_chunk`` while others stream);
   for each chunk: the time until the prompt is read (the newcomer's time to first token) and the
   longest step (the others' longest pause);
3. **engine**: openwen's :class:`~openwen.engines.batched.BatchedEngine` (its defaults, the
   thread tuner on) reading the same text as one chat message, cold: prompt tokens/s from its
   own timings, and how much of that time was inside ``llama_decode`` (the profile: the rest is
   the scheduler's).

    .venv/bin/python bench/prefill.py [--threads 2] [--prompt 4000] [--rounds 2]
        [--chunks 32,64,128,256,512] [--only cold|join|engine]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prefix import conversation  # noqa: E402
from servers import machine  # noqa: E402

from openwen.engines.batch_native import NativeContext, NativeModel  # noqa: E402
from openwen.models.store import bundled_model_path  # noqa: E402

# (n_batch, n_ubatch, flash attention: -1 auto, 0 off, 1 on)
CONFIGS: list[tuple[int, int, int]] = [
    (512, 512, -1), (512, 512, 0), (512, 256, -1), (512, 128, -1),
    (1024, 512, -1), (2048, 512, -1), (1024, 1024, -1), (2048, 2048, -1),
]
JOIN_PROMPT = 300
OTHERS = 3


def prompt_tokens(model: NativeModel, n: int) -> list[int]:
    """``n`` tokens of the garden chat bench/prefix.py uses (plain text, no template)."""
    text = "\n".join(m["content"] for m in conversation("garden", n + 200))
    tokens = model.tokenize(text, add_bos=True)
    assert len(tokens) >= n, len(tokens)
    return tokens[:n]


def context(model: NativeModel, args: argparse.Namespace, n_batch: int, n_ubatch: int,
            flash: int) -> NativeContext:
    ctx = NativeContext(model, n_cells=args.cells, n_seq=8, n_batch=n_batch,
                        n_threads=args.threads, n_ubatch=n_ubatch, flash_attn=flash)
    read(ctx, [1] * 16, 0, 7)  # warm-up: compute buffers, thread pool
    ctx.seq_rm(-1, -1, -1)
    return ctx


def read(ctx: NativeContext, tokens: list[int], pos0: int, seq: int) -> None:
    """Feed ``tokens`` to sequence ``seq`` in ``n_batch`` steps, one output at the end."""
    for start in range(0, len(tokens), ctx.n_batch):
        part = tokens[start : start + ctx.n_batch]
        ctx.put_run(0, part, pos0 + start, seq)
        if start + len(part) == len(tokens):
            ctx.logits[len(part) - 1] = 1
        assert ctx.decode(len(part)) == 0


def cold(ctx: NativeContext, tokens: list[int]) -> float:
    """Tokens/s reading ``tokens`` into an empty cache."""
    ctx.seq_rm(-1, -1, -1)
    start = time.perf_counter()
    read(ctx, tokens, 0, 0)
    elapsed = time.perf_counter() - start
    ctx.seq_rm(-1, -1, -1)
    return len(tokens) / elapsed


def join(ctx: NativeContext, tokens: list[int], chunk: int) -> tuple[float, float]:
    """Seconds to read ``tokens`` ``chunk`` at a time beside three decoding sequences; and the
    longest step."""
    ctx.seq_rm(-1, -1, -1)
    pos = []
    for seq in range(OTHERS):
        read(ctx, tokens[:40], 0, seq + 1)
        pos.append(40)
    fed, longest = 0, 0.0
    start = time.perf_counter()
    while fed < len(tokens):
        for seq in range(OTHERS):
            ctx.put(seq, 100 + seq, pos[seq], seq + 1, True)
            pos[seq] += 1
        k = min(chunk, len(tokens) - fed, ctx.n_batch - OTHERS)
        ctx.put_run(OTHERS, tokens[fed : fed + k], fed, 0)
        fed += k
        if fed == len(tokens):
            ctx.logits[OTHERS + k - 1] = 1
        t = time.perf_counter()
        assert ctx.decode(OTHERS + k) == 0
        longest = max(longest, time.perf_counter() - t)
    elapsed = time.perf_counter() - start
    ctx.seq_rm(-1, -1, -1)
    return elapsed, longest


def engine_prefill(model: NativeModel, args: argparse.Namespace, text: str) -> dict[str, float]:
    """One cold request through a fresh BatchedEngine: prompt tok/s and the decode share."""
    from openwen.engines.batched import BatchedEngine
    from openwen.messages import Done, Message
    from openwen.requests import ChatRequest, Sampling

    engine = BatchedEngine(bundled_model_path(), name="smollm2", n_ctx=args.cells,
                           n_threads=args.threads, model=model, kv_ram_mb=0)
    request = ChatRequest(messages=(Message("user", text),), max_tokens=1,
                          sampling=Sampling(temperature=0.0, seed=0))

    async def run() -> Done:
        warm = ChatRequest(messages=(Message("user", "Hi"),), max_tokens=2)
        _ = [e async for e in engine.stream(warm)]
        worker = engine.worker
        decode0, busy0 = worker.decode_seconds, worker.busy_seconds
        done = [e async for e in engine.stream(request)][-1]
        assert isinstance(done, Done)
        stats["decode_s"] = worker.decode_seconds - decode0
        stats["busy_s"] = worker.busy_seconds - busy0
        return done

    stats: dict[str, float] = {}
    try:
        done = asyncio.run(run())
    finally:
        asyncio.run(engine.aclose())
    assert done.timings is not None
    prompt_s = done.timings.prompt_ms / 1000
    stats.update(tokens=done.usage.prompt_tokens, prompt_s=prompt_s,
                 rate=done.usage.prompt_tokens / prompt_s)
    return stats


def label(config: tuple[int, int, int]) -> str:
    n_batch, n_ubatch, flash = config
    fa = {-1: "auto", 0: "off", 1: "on"}[flash]
    return f"n_batch {n_batch:>4} n_ubatch {n_ubatch:>4} flash {fa}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt", type=int, default=4000, help="tokens of the cold prompt")
    ap.add_argument("--cells", type=int, default=8192, help="KV cells of the context")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--chunks", type=lambda s: [int(x) for x in s.split(",")],
                    default=[32, 64, 128, 256, 512])
    ap.add_argument("--only", choices=["cold", "join", "engine"])
    args = ap.parse_args()
    model = NativeModel(bundled_model_path())
    long_prompt = prompt_tokens(model, args.prompt)
    short_prompt = prompt_tokens(model, JOIN_PROMPT)
    rates: dict[tuple[int, int, int], list[float]] = {c: [] for c in CONFIGS}
    joins: dict[int, list[tuple[float, float]]] = {c: [] for c in args.chunks}
    engine_text = "\n".join(m["content"] for m in conversation("garden", args.prompt))
    engines: list[dict[str, float]] = []
    for r in range(args.rounds):
        if args.only in (None, "cold"):
            for config in CONFIGS[r % len(CONFIGS):] + CONFIGS[:r % len(CONFIGS)]:
                ctx = context(model, args, *config)
                rates[config].append(cold(ctx, long_prompt))
                ctx.close()
                print(f"  round {r + 1} {label(config)}: {rates[config][-1]:7.1f} tok/s",
                      flush=True)
        if args.only in (None, "engine"):
            engines.append(engine_prefill(model, args, engine_text))
            e = engines[-1]
            print(f"  round {r + 1} engine: {e['rate']:7.1f} tok/s ({e['tokens']:.0f} tokens)",
                  flush=True)
        if args.only in (None, "join"):
            ctx = context(model, args, 512, 512, -1)
            for chunk in args.chunks:
                joins[chunk].append(join(ctx, short_prompt, chunk))
            ctx.close()
        print(f"  round {r + 1}/{args.rounds} done; {machine()}", flush=True)
    print(f"\nprefill: SmolLM2-135M Q4_1, {args.threads} threads, {args.cells} cells, best of "
          f"{args.rounds}; {datetime.date.today()}; {machine()}")
    if args.only in (None, "cold"):
        top = max(max(v) for v in rates.values())
        print(f"cold prefill of {args.prompt} tokens, alone:")
        for config, got in rates.items():
            print(f"  {label(config)}: {max(got):7.1f} tok/s ({max(got) / top:.3f}x the best; "
                  f"all {', '.join(f'{x:.1f}' for x in got)})")
    if engines:
        e = max(engines, key=lambda x: x["rate"])
        rates = ", ".join(f"{x['rate']:.1f}" for x in engines)
        print(f"openwen BatchedEngine, cold, {e['tokens']:.0f} prompt tokens: {e['rate']:7.1f} "
              f"tok/s (all {rates}); of its "
              f"{e['prompt_s'] * 1000:.0f} ms prompt time {e['decode_s'] * 1000:.0f} ms in "
              f"llama_decode, owner thread busy {e['busy_s'] * 1000:.0f} ms")
    if args.only in (None, "join"):
        print(f"a {JOIN_PROMPT}-token prompt read beside {OTHERS} decoding sequences "
              "(n_batch 512, n_ubatch 512, flash auto):")
        for chunk, got in joins.items():
            read_s = min(g[0] for g in got)
            pause = min(g[1] for g in got)
            print(f"  chunk {chunk:>4}: read in {read_s * 1000:6.0f} ms, longest step "
                  f"{pause * 1000:5.0f} ms")


if __name__ == "__main__":
    main()
