"""Concurrent streams through the HTTP API: openwen's batched engine vs llama-cpp-python's server.

Both servers run the bundled SmolLM2-135M on the same threads and context size (each alone on the
machine while measured). For 1, 4 and 8 concurrent streamed ``/v1/chat/completions`` requests
(distinct prompts, greedy, ``--tokens`` tokens each) the aggregate rate is all completion tokens
over the wall time from the first request sent to the last token received; rounds alternate
(1, 4, 8, 1, 4, 8, ...) and the best of ``--rounds`` counts (load only ever slows a run down).
Targets for openwen: 4 streams >= 1.35x the rate of 1 stream, 8 streams >= 1.6x (llama.cpp
itself evaluates 4 tokens in one batch at ~1.5x, 8 at ~1.85x the single-token rate on a quiet
machine: the ceiling).

Then "joining": three long streams run; once each has 10 tokens, a fourth request with a ~300-token
prompt is sent. Shown: its time to first token, and how many tokens the other three received
between its sending and its first token (0 when a server runs one request at a time), with their
longest pause in that window.

    .venv/bin/python bench/concurrency.py [--threads 2] [--tokens 96] [--rounds 3]
                                          [--streams 1,4,8] [--only openwen] [--omp-spin]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers import (  # noqa: E402
    Stream,
    llama_cpp_server,
    machine,
    omp_policy,
    openwen_server,
    stream_chat,
)

from openwen.models.store import bundled_model_path  # noqa: E402

N_CTX = 4096
TOPICS = ["a dragon who learns to cook", "the history of bicycles", "a lighthouse keeper",
          "how volcanoes form", "a robot lost in a city", "the life of honeybees",
          "a voyage across the ocean", "the invention of the printing press"]
NOTES = "Here are my notes about gardening. " + " ".join(
    f"Plant {i} needs water every {i % 7 + 1} days." for i in range(25))


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def burst(client: httpx.AsyncClient, url: str, n: int, tokens: int, round_: int
                ) -> dict[str, float]:
    """``n`` concurrent streams; the aggregate tokens/s and mean time to first token."""
    prompts = [ask(f"({round_}.{i}) Write a long story about {TOPICS[i % len(TOPICS)]}.")
               for i in range(n)]
    start = time.perf_counter()
    runs: list[Stream] = await asyncio.gather(
        *(stream_chat(client, url, p, max_tokens=tokens) for p in prompts))
    end = max(r.done for r in runs)
    return {"rate": sum(r.tokens for r in runs) / (end - start),
            "ttft": statistics.mean(r.ttft for r in runs),
            "tokens": sum(r.tokens for r in runs)}


async def joining(client: httpx.AsyncClient, url: str) -> dict[str, float]:
    """Does a new request get its first token while three others keep streaming?"""
    watched = [Stream(sent=0.0) for _ in range(3)]
    others = [asyncio.create_task(stream_chat(client, url, ask(f"Write a long essay about {t}."),
                                              max_tokens=160, run=w))
              for t, w in zip(TOPICS, watched, strict=False)]
    while not all(len(w.arrivals) >= 10 or t.done() for w, t in zip(watched, others,
                                                                    strict=True)):
        await asyncio.sleep(0.02)
    new = await stream_chat(client, url, ask(NOTES + " Which plant needs the most water?"),
                            max_tokens=8)
    done = await asyncio.gather(*others)
    first = new.sent + new.ttft
    during = [[a for a in r.arrivals if new.sent <= a <= first] for r in done]
    gaps = [b - a for r in during for a, b in zip(r, r[1:], strict=False)]
    return {"ttft": new.ttft, "tokens_meanwhile": sum(len(d) for d in during),
            "longest_pause": max(gaps, default=float("nan"))}


async def measure(url: str, args: argparse.Namespace) -> dict[Any, Any]:
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        await stream_chat(client, url, ask("Say hello."), max_tokens=8)  # warm-up
        rounds: dict[int, list[dict[str, float]]] = {n: [] for n in args.streams}
        for r in range(args.rounds):  # 1, 4, 8, 1, 4, 8, ...: noise spreads over all of them
            for n in args.streams:
                rounds[n].append(await burst(client, url, n, args.tokens, r))
        result: dict[Any, Any] = {}
        for n, runs in rounds.items():
            result[n] = max(runs, key=lambda x: x["rate"])
            result[n]["all"] = [x["rate"] for x in runs]
            print(f"    {n} streams: {result[n]['rate']:.1f} tok/s "
                  f"(rounds: {', '.join(f'{x:.1f}' for x in result[n]['all'])})", flush=True)
        result["join"] = await joining(client, url)
        return result


def report(results: dict[str, dict[Any, Any]], args: argparse.Namespace) -> None:
    print(f"\nconcurrency: SmolLM2-135M Q4_1, {args.threads} threads, n_ctx {N_CTX}, "
          f"{args.tokens} tokens per stream, best of {args.rounds}; "
          f"{datetime.date.today()}; {machine()}")
    print(f"{'server':<22}" + "".join(f"{f'{n} streams':>22}" for n in args.streams))
    for name, res in results.items():
        base = res[args.streams[0]]["rate"]
        cells = [f"{res[n]['rate']:7.1f} tok/s ({res[n]['rate'] / base:4.2f}x)"
                 for n in args.streams]
        print(f"{name:<22}" + "".join(f"{c:>22}" for c in cells))
    if len(results) == 2:
        a, b = (results[k] for k in results)
        print(f"{'openwen / llama_cpp':<22}" + "".join(
            f"{a[n]['rate'] / b[n]['rate']:>21.2f}x" for n in args.streams))
    targets = {4: 1.35, 8: 1.6}
    ow = results.get("openwen batched")
    if ow:
        base = ow[args.streams[0]]["rate"]
        for n, want in targets.items():
            if n in ow:
                got = ow[n]["rate"] / base
                print(f"target {n} streams >= {want}x of 1: {got:.2f}x "
                      f"{'MET' if got >= want else 'NOT MET'}")
    print("\njoining (a ~300-token prompt sent while 3 streams run):")
    for name, res in results.items():
        j = res["join"]
        print(f"  {name:<22} first token after {j['ttft'] * 1000:7.0f} ms; the others got "
              f"{j['tokens_meanwhile']} tokens meanwhile, longest pause "
              f"{j['longest_pause'] * 1000:.0f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=96)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--streams", type=lambda s: [int(x) for x in s.split(",")],
                    default=[1, 4, 8])
    ap.add_argument("--only", choices=["openwen", "llama_cpp"])
    ap.add_argument("--omp-spin", action="store_true", help="keep OpenMP's spinning default")
    args = ap.parse_args()
    omp_policy(args.omp_spin)
    model = bundled_model_path()
    results: dict[str, dict[Any, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="openwen-bench-") as tmp:
        servers: dict[str, Callable[[], AbstractContextManager[str]]] = {
            "openwen batched": lambda: openwen_server(Path(tmp) / "home", threads=args.threads,
                                                      n_ctx=N_CTX),
            "llama_cpp.server": lambda: llama_cpp_server(model, Path(tmp), threads=args.threads,
                                                         n_ctx=N_CTX),
        }
        for name, start in servers.items():
            if args.only and not name.startswith(args.only):
                continue
            print(f"{name}:", flush=True)
            with start() as url:
                results[name] = asyncio.run(measure(url, args))
    report(results, args)


if __name__ == "__main__":
    main()
