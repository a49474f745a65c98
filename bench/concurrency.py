"""Concurrent streams: openwen's batched engine vs llama.cpp's llama-server, next to the ceiling.

Everything runs the bundled SmolLM2-135M on the same threads. Measured in one run, interleaved
(round 1 of every side, then round 2, ...; the best of ``--rounds`` counts):

1. **ceiling** (in a fresh process per measurement): llama.cpp evaluating one token of each
   of N sequences per ``llama_decode`` and sampling each greedily with llama.cpp's sampler,
   nothing else;
2. **engine** (in a fresh process per measurement): openwen's :class:`BatchedEngine` with N
   concurrent greedy requests, on the ceiling's fixed thread count (the thread tuner off: in a
   fresh engine its first probes, after 8, 24 and 56 steps, run 12 of a 97-step burst on one
   thread, 5-15% of the rate; a long-running server has backed off to a probe every 1,024
   steps; ``bench/step_profile.py --tuner`` shows the difference); the time each step spends
   outside ``llama_decode`` (scheduling, sampling, detokenising, stop checks, handing events to
   the event loop) is the per-step overhead, in microseconds;
3. **HTTP**: N concurrent streamed ``/v1/chat/completions`` (distinct prompts, greedy,
   ``--tokens`` tokens each) against ``openwen serve`` and ``llama-server -np 8`` (if a binary is
   found: ``--llama-server PATH``, or one built by ``--build-llama-server``; see
   ``servers.py``) and, with ``--with-llama-cpp-python``, llama-cpp-python's server. The
   aggregate rate is all completion tokens over the wall time from the first request sent to the
   last token received.

Each in-process measurement gets a process of its own: with the ceiling's llama.cpp context and
the engine's driven from two threads of one process, whichever ran second read up to 2.5x slower
(its first single-sequence ceiling 86 tok/s, the same after the engine had run 35 tok/s).

Ratios: N streams over the best single-stream HTTP rate measured in this run (any server), and
over the ceiling for N sequences. Targets for openwen: 4 streams >= 1.4x and >= 0.93x the
ceiling, 8 streams >= 1.6x.

Then "joining": three long streams run; once each has 10 tokens, a fourth request with a
~300-token prompt is sent. Shown: its time to first token, and how many tokens the other three
received between its sending and its first token, with their longest pause in that window.

    .venv/bin/python bench/concurrency.py [--threads 2] [--tokens 96] [--rounds 3]
        [--streams 1,4,8] [--only openwen|llama-server] [--llama-server PATH]
        [--build-llama-server] [--with-llama-cpp-python] [--omp-spin] [--client lean]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers import (  # noqa: E402
    Stream,
    add_server_options,
    llama_cpp_server,
    llama_server,
    llama_server_binary,
    machine,
    omp_policy,
    openwen_server,
    stream_chat,
    stream_chat_lean,
)

from openwen.messages import Done, Message  # noqa: E402
from openwen.models.store import bundled_model_path  # noqa: E402
from openwen.requests import ChatRequest, Sampling  # noqa: E402

N_CTX = 4096
TOPICS = ["a dragon who learns to cook", "the history of bicycles", "a lighthouse keeper",
          "how volcanoes form", "a robot lost in a city", "the life of honeybees",
          "a voyage across the ocean", "the invention of the printing press"]
NOTES = "Here are my notes about gardening. " + " ".join(
    f"Plant {i} needs water every {i % 7 + 1} days." for i in range(25))


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def story(i: int, round_: int) -> str:
    return f"({round_}.{i}) Write a long story about {TOPICS[i % len(TOPICS)]}."


class InProcess:
    """The ceiling (raw llama.cpp) and openwen's engine, both loaded in this process."""

    def __init__(self, model: Path, threads: int, max_streams: int):
        from openwen.engines.batch_native import NativeContext, NativeModel
        from openwen.engines.batched import BatchedEngine

        self.engine = BatchedEngine(model, name="smollm2", n_ctx=N_CTX, n_threads=threads,
                                    kv_slots=max(8, max_streams), kv_cells=N_CTX * 2,
                                    kv_ram_mb=0, adaptive_threads=False)
        self.raw_model = NativeModel(model)
        self.raw = NativeContext(self.raw_model, n_cells=N_CTX * 2, n_seq=max_streams,
                                 n_batch=512, n_threads=threads)
        ctx = self.engine._ctx
        decode = ctx.decode
        self.decode_s = 0.0

        def timed(n: int) -> int:
            t = time.perf_counter()
            try:
                return decode(n)
            finally:
                self.decode_s += time.perf_counter() - t

        ctx.decode = timed  # type: ignore[method-assign]

    def ceiling(self, n: int, tokens: int, round_: int) -> float:
        """Tokens/s of llama.cpp alone: N sequences, one token each per decode, greedy."""
        import llama_cpp
        from llama_cpp._internals import LlamaSampler

        ctx = self.raw
        ctx.seq_rm(-1, -1, -1)
        chains, positions, nxt = [], [], []
        for seq in range(n):
            text = self.engine.render(ChatRequest(messages=(Message("user", story(seq, round_)),))
                                      ).text
            prompt = self.engine.tokenize(text)
            ctx.put_run(0, prompt, 0, seq)
            ctx.logits[len(prompt) - 1] = 1
            assert ctx.decode(len(prompt)) == 0
            chain = LlamaSampler()
            chain.add_greedy()
            chains.append(chain)
            nxt.append(int(llama_cpp.llama_sampler_sample(chain.sampler, ctx.ctx,
                                                          len(prompt) - 1)))
            positions.append(len(prompt))
        start = time.perf_counter()
        for _ in range(tokens):
            for seq in range(n):
                ctx.put(seq, nxt[seq], positions[seq], seq, True)
                positions[seq] += 1
            assert ctx.decode(n) == 0
            for seq in range(n):
                nxt[seq] = int(llama_cpp.llama_sampler_sample(chains[seq].sampler, ctx.ctx, seq))
        elapsed = time.perf_counter() - start
        for chain in chains:
            chain.close()
        return n * tokens / elapsed

    def openwen(self, n: int, tokens: int, round_: int) -> dict[str, float]:
        """Aggregate tokens/s of N concurrent requests, and the step time outside decode."""
        engine = self.engine
        engine.worker.call(lambda: engine.cache.table.slots and [
            engine.cache.table.clear(s) for s in engine.cache.table.slots])

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

        w = engine.worker
        steps0, decode0 = w.steps, self.decode_s
        busy0 = getattr(w, "busy_seconds", float("nan"))  # older engines do not count it
        wall, produced = asyncio.run(run())
        steps = max(w.steps - steps0, 1)
        decode = self.decode_s - decode0
        busy = getattr(w, "busy_seconds", float("nan")) - busy0
        return {"rate": produced / wall, "overhead_us": (busy - decode) / steps * 1e6,
                "wall_overhead_us": (wall - decode) / steps * 1e6}

    def close(self) -> None:
        asyncio.run(self.engine.aclose())
        self.raw.close()
        self.raw_model.close()


async def burst(client: httpx.AsyncClient, url: str, n: int, tokens: int, round_: int,
                lean: bool = False) -> dict[str, float]:
    """``n`` concurrent streams; the aggregate tokens/s, mean time to first token and this
    client's own CPU per token (it shares the cores with the server)."""
    start, cpu = time.perf_counter(), time.process_time()
    runs: list[Stream] = await asyncio.gather(*(
        stream_chat_lean(url, ask(story(i, round_)), max_tokens=tokens) if lean
        else stream_chat(client, url, ask(story(i, round_)), max_tokens=tokens)
        for i in range(n)))
    end = max(r.done for r in runs)
    produced = sum(r.tokens for r in runs)
    return {"rate": produced / (end - start),
            "ttft": statistics.mean(r.ttft for r in runs),
            "tokens": produced,
            "client_us": (time.process_time() - cpu) / max(produced, 1) * 1e6}


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


def http_round(url: str, streams: list[int], tokens: int, round_: int, lean: bool = False
               ) -> dict[int, dict[str, float]]:
    async def run() -> dict[int, dict[str, float]]:
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        async with httpx.AsyncClient(timeout=600, limits=limits) as client:
            if round_ == 0:
                await stream_chat(client, url, ask("Say hello."), max_tokens=8)  # warm-up
            return {n: await burst(client, url, n, tokens, round_, lean) for n in streams}

    return asyncio.run(run())


def http_join(url: str) -> dict[str, float]:
    async def run() -> dict[str, float]:
        async with httpx.AsyncClient(timeout=600) as client:
            return await joining(client, url)

    return asyncio.run(run())


def servers(args: argparse.Namespace, tmp: Path, model: Path
            ) -> dict[str, Callable[[], AbstractContextManager[str]]]:
    found: dict[str, Callable[[], AbstractContextManager[str]]] = {
        "openwen": lambda: openwen_server(tmp / "home", threads=args.threads, n_ctx=N_CTX)}
    binary = llama_server_binary(args)
    if binary is not None:
        found["llama-server"] = lambda: llama_server(binary, model, tmp, threads=args.threads,
                                                     n_ctx=N_CTX, parallel=max(args.streams))
    if args.with_llama_cpp_python:
        found["llama_cpp.server"] = lambda: llama_cpp_server(model, tmp, threads=args.threads,
                                                             n_ctx=N_CTX)
    return {k: v for k, v in found.items() if not args.only or k == args.only}


def best(runs: list[dict[str, float]]) -> dict[str, Any]:
    top: dict[str, Any] = dict(max(runs, key=lambda x: x["rate"]))
    top["all"] = [x["rate"] for x in runs]
    return top


def in_fresh_process(side: str, n: int, round_: int, args: argparse.Namespace
                     ) -> dict[str, float]:
    """One in-process measurement (``ceiling`` or ``engine``) in a process of its own."""
    out = subprocess.run(
        [sys.executable, __file__, "--in-process", side, str(n), str(args.tokens), str(round_),
         str(args.threads), str(max(args.streams))],
        capture_output=True, text=True, check=True, timeout=600)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def in_process_main(side: str, n: int, tokens: int, round_: int, threads: int,
                    max_streams: int) -> None:
    inproc = InProcess(bundled_model_path(), threads, max_streams)
    try:
        if side == "ceiling":
            result = {"rate": inproc.ceiling(n, tokens, round_)}
        else:
            result = inproc.openwen(n, tokens, round_)
    finally:
        inproc.close()
    print(json.dumps(result), flush=True)


def measure(args: argparse.Namespace) -> dict[str, dict[Any, Any]]:
    model = bundled_model_path()
    raw: dict[str, dict[int, list[dict[str, float]]]] = {
        "ceiling": {n: [] for n in args.streams}, "engine": {n: [] for n in args.streams}}
    http: dict[str, dict[int, list[dict[str, float]]]] = {}
    joins: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="openwen-bench-") as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        urls = {name: stack.enter_context(start())
                for name, start in servers(args, tmp, model).items()}
        for r in range(args.rounds):  # every side once per round: noise spreads over all
            if not args.only:
                for n in args.streams:
                    for side in ("ceiling", "engine"):
                        raw[side][n].append(in_fresh_process(side, n, r, args))
            for name, url in urls.items():
                for n, res in http_round(url, args.streams, args.tokens, r,
                                                 args.client == "lean").items():
                    http.setdefault(name, {}).setdefault(n, []).append(res)
            print(f"  round {r + 1}/{args.rounds} done; {machine()}", flush=True)
        for name, url in urls.items():
            joins[name] = http_join(url)
    results: dict[str, dict[Any, Any]] = {}
    if not args.only:
        results.update({k: {n: best(v) for n, v in runs.items()} for k, runs in raw.items()})
    for name, runs in http.items():
        results[name] = {n: best(v) for n, v in runs.items()}
        results[name]["join"] = joins[name]
    return results


def report(results: dict[str, dict[Any, Any]], args: argparse.Namespace) -> None:
    print(f"\nconcurrency: SmolLM2-135M Q4_1, {args.threads} threads, n_ctx {N_CTX}, "
          f"{args.tokens} tokens per stream, best of {args.rounds}, client {args.client}; "
          f"{datetime.date.today()}; {machine()}")
    streams = args.streams
    http = [k for k in results if k not in ("ceiling", "engine")]
    single = max((results[k][1]["rate"] for k in http if 1 in results[k]), default=None)
    print(f"{'':<20}" + "".join(f"{f'{n} streams':>24}" for n in streams))
    for name, res in results.items():
        base = single if name in http else res[streams[0]]["rate"]
        cells = [f"{res[n]['rate']:7.1f} tok/s ({res[n]['rate'] / base:4.2f}x)"
                 for n in streams] if base else []
        print(f"{name + (' (HTTP)' if name in http else ' (in process)'):<20}"
              + "".join(f"{c:>24}" for c in cells))
    if "engine" in results:
        e = results["engine"]
        print("engine per-step time outside llama_decode (owner thread / wall clock): "
              + ", ".join(f"{n} streams {e[n]['overhead_us']:.0f} / {e[n]['wall_overhead_us']:.0f}"
                          " us" for n in streams))
    for name in http:
        print(f"client CPU per token, {name} (this process, on the same cores): " + ", ".join(
            f"{n} streams {results[name][n]['client_us']:.0f} us" for n in streams))
    ceiling = results.get("ceiling")
    for name in http:
        if ceiling:
            print(f"{name} / ceiling: " + ", ".join(
                f"{n} streams {results[name][n]['rate'] / ceiling[n]['rate']:.2f}x"
                for n in streams))
    if "openwen" in results and "llama-server" in results:
        print("openwen / llama-server: " + ", ".join(
            f"{n} streams {results['openwen'][n]['rate'] / results['llama-server'][n]['rate']:.2f}x"
            for n in streams))
    ow = results.get("openwen")
    if ow and single:
        print(f"(ratios over the best single-stream HTTP rate of this run: {single:.1f} tok/s)")
        for n, want in {4: 1.4, 8: 1.6}.items():
            if n in ow:
                got = ow[n]["rate"] / single
                verdict = "MET" if got >= want else "NOT MET"
                print(f"target {n} streams >= {want}x: {got:.2f}x {verdict}")
        if ceiling and 4 in ow:
            got = ow[4]["rate"] / ceiling[4]["rate"]
            print(f"target 4 streams >= 0.93x the ceiling: {got:.2f}x "
                  f"{'MET' if got >= 0.93 else 'NOT MET'}")
    print("\njoining (a ~300-token prompt sent while 3 streams run):")
    for name in http:
        j = results[name]["join"]
        print(f"  {name:<18} first token after {j['ttft'] * 1000:7.0f} ms; the others got "
              f"{j['tokens_meanwhile']} tokens meanwhile, longest pause "
              f"{j['longest_pause'] * 1000:.0f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=96)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--streams", type=lambda s: [int(x) for x in s.split(",")],
                    default=[1, 4, 8])
    ap.add_argument("--client", choices=["httpx", "lean"], default="httpx",
                    help="HTTP client of the bursts: httpx, or a raw connection that costs the "
                         "shared cores the least (servers.stream_chat_lean)")
    add_server_options(ap)
    args = ap.parse_args()
    if 1 not in args.streams:
        args.streams.insert(0, 1)
    omp_policy(args.omp_spin)
    report(measure(args), args)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--in-process":
        in_process_main(sys.argv[2], *(int(a) for a in sys.argv[3:8]))
    else:
        main()
