"""Constrained decoding against unconstrained, same model, prompt and output length, in one run.

Three kinds of request decode the same number of tokens (``--tokens``, as ``max_tokens``):

- ``free``: no constraint; the prompt asks for a long story, so the model talks past the budget;
- ``schema``: ``response_format`` ``json_schema`` with one string field of ``minLength`` 2000
  characters, so the grammar cannot let the answer end before the budget;
- ``free+tools``: the tool request's prompt (the tool rendered into it: 223 prompt tokens
  against 69), ``tool_choice`` ``none``: the anchor of ``tool``;
- ``tool``: ``tool_choice`` naming one function whose only argument is such a string.

Each at temperature 0 (greedy) and at ``--temperature`` (seeded), rounds interleaved (free, schema,
tool, free, ...) so machine noise hits every kind alike. Rate = (tokens - 1) / (time of the last
token - time of the first): in process, the engine's own ``Done.timings.decode_ms`` (first sampled
token to the last); over HTTP through ``openwen serve`` (bench/servers.py), the arrival of the first
and last streamed chunk (content or tool-call delta) and ``usage.completion_tokens``; a forced
tool call arrives whole at the end, so over HTTP every kind also gets tokens / (request sent ->
last chunk) ("whole request": the prompt is in the prefix cache after the warm-up, so this is
mostly decoding). A run that ended before the budget is counted as "short" and left out.
The grammar's rejection rate is the share of sampled tokens the grammar turned down
(``JobSampler.rejections``, summed by the scheduler as ``grammar_rejections`` /
``grammar_tokens``), read in process.
Target: constrained / free >= 0.9 (ratio of the medians; ``schema`` against ``free``, ``tool``
against ``free+tools``, the same prompt each).

    .venv/bin/python bench/constrained.py [--rounds 5] [--tokens 128] [--temperature 0.7]
                                          [--threads 2] [--no-http] [--no-engine]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers import machine, omp_policy, openwen_server  # noqa: E402

from openwen.messages import Done, Message  # noqa: E402
from openwen.requests import ChatRequest, Sampling  # noqa: E402

PROMPT = ("Write a very long, detailed story about a young dragon who learns to fly over the "
          "mountains, the sea and the cities of men. Describe every place, every person and "
          "every feeling at length.")
LONG_STRING = {"type": "string", "minLength": 2000}  # the schema limit
SCHEMA = {"type": "object", "properties": {"story": LONG_STRING}, "required": ["story"]}
TOOL = {"type": "function", "function": {
    "name": "save_story", "description": "Save a story.",
    "parameters": {"type": "object", "properties": {"story": LONG_STRING},
                   "required": ["story"]}}}
KINDS = ("free", "schema", "free+tools", "tool")
BASELINE = {"free": "free", "schema": "free", "free+tools": "free+tools", "tool": "free+tools"}


def body(kind: str, temperature: float, tokens: int, seed: int) -> dict[str, Any]:
    """The OpenAI request body of one run."""
    out: dict[str, Any] = {"model": "smollm2", "max_tokens": tokens, "temperature": temperature,
                           "seed": seed, "messages": [{"role": "user", "content": PROMPT}]}
    if kind == "schema":
        out["response_format"] = {"type": "json_schema",
                                  "json_schema": {"name": "story", "schema": SCHEMA}}
    elif kind == "tool":
        out["tools"] = [TOOL]
        out["tool_choice"] = {"type": "function", "function": {"name": "save_story"}}
    elif kind == "free+tools":  # the tool request's prompt (tools rendered), nothing forced
        out["tools"] = [TOOL]
        out["tool_choice"] = "none"
    return out


def request(kind: str, temperature: float, tokens: int, seed: int) -> ChatRequest:
    b = body(kind, temperature, tokens, seed)
    return ChatRequest(messages=(Message("user", PROMPT),), max_tokens=tokens,
                       sampling=Sampling(temperature=temperature, seed=seed),
                       response_format=b.get("response_format"),
                       tools=tuple(b.get("tools", ())),
                       tool_choice=b.get("tool_choice"))


class Tally:
    """Rates per (kind, temperature), runs that ended early, grammar rejections."""

    def __init__(self) -> None:
        self.rates: dict[tuple[str, float], list[float]] = {}
        self.short: dict[tuple[str, float], int] = {}
        self.sampled: dict[tuple[str, float], int] = {}
        self.rejected: dict[tuple[str, float], int] = {}
        self.whole: dict[tuple[str, float], list[float]] = {}  # HTTP: tokens / request time

    def add(self, key: tuple[str, float], tokens: int, budget: int, seconds: float) -> None:
        if tokens < budget or seconds <= 0:
            self.short[key] = self.short.get(key, 0) + 1
            return
        self.rates.setdefault(key, []).append((tokens - 1) / seconds)

    def median(self, key: tuple[str, float]) -> float:
        values = self.rates.get(key)
        return statistics.median(values) if values else float("nan")


async def engine_run(engine: Any, req: ChatRequest) -> tuple[int, float]:
    done: Done | None = None
    async for event in engine.stream(req):
        if isinstance(event, Done):
            done = event
    assert done is not None
    return done.usage.completion_tokens, done.timings.decode_ms / 1000


def bench_engine(args: argparse.Namespace) -> Tally:
    from openwen.engines.batched import BatchedEngine
    from openwen.models.store import bundled_model_path

    engine = BatchedEngine(bundled_model_path(), name="smollm2", n_ctx=2048,
                           n_threads=args.threads)
    worker = engine.worker
    tally = Tally()
    try:
        for temperature in (0.0, args.temperature):
            for kind in KINDS:  # warm-up: grammar built and cached, prompt in the prefix cache
                asyncio.run(engine_run(engine, request(kind, temperature, 8, 0)))
        for r in range(args.rounds):
            for temperature in (0.0, args.temperature):
                for kind in KINDS:
                    key = (kind, temperature)
                    before = worker.grammar_tokens, worker.grammar_rejections
                    n, seconds = asyncio.run(engine_run(
                        engine, request(kind, temperature, args.tokens, r + 1)))
                    tally.add(key, n, args.tokens, seconds)
                    tally.sampled[key] = tally.sampled.get(key, 0) + (
                        worker.grammar_tokens - before[0])
                    tally.rejected[key] = tally.rejected.get(key, 0) + (
                        worker.grammar_rejections - before[1])
    finally:
        asyncio.run(engine.aclose())
    return tally


def http_run(client: httpx.Client, url: str, b: dict[str, Any]) -> tuple[int, float, float]:
    """Streamed; (completion tokens, last chunk - first chunk, request sent - last chunk)."""
    b = {**b, "stream": True, "stream_options": {"include_usage": True}}
    arrivals: list[float] = []
    tokens = 0
    sent = time.perf_counter()
    with client.stream("POST", url + "/v1/chat/completions", json=b) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code}: {response.read()[:500]!r}")
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"].get("completion_tokens") or 0
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                if delta.get("content") or delta.get("tool_calls"):
                    arrivals.append(time.perf_counter())
    end = time.perf_counter()
    if len(arrivals) < 2:  # a forced tool call arrives whole, at the end
        return tokens, 0.0, end - sent
    return tokens, arrivals[-1] - arrivals[0], end - sent


def bench_http(args: argparse.Namespace) -> Tally:
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="openwen-constrained-") as tmp, \
            openwen_server(Path(tmp) / "home", threads=args.threads, n_ctx=2048) as url, \
            httpx.Client(timeout=300) as client:
        for temperature in (0.0, args.temperature):
            for kind in KINDS:
                http_run(client, url, body(kind, temperature, 8, 0))
        for r in range(args.rounds):
            for temperature in (0.0, args.temperature):
                for kind in KINDS:
                    n, seconds, total = http_run(
                        client, url, body(kind, temperature, args.tokens, r + 1))
                    tally.add((kind, temperature), n, args.tokens, seconds)
                    if n >= args.tokens:
                        tally.whole.setdefault((kind, temperature), []).append(n / total)
    return tally


def report(name: str, tally: Tally, args: argparse.Namespace) -> None:
    print(f"\n{name}: {args.tokens} tokens, {args.rounds} rounds, {machine()}")
    print(f"{'kind':<11}{'temp':>6}{'median tok/s':>14}{'vs free':>9}{'runs':>6}{'short':>7}"
          f"{'rejected':>10}{'whole request':>15}{'vs free':>9}")
    for temperature in (0.0, args.temperature):
        for kind in KINDS:
            key = (kind, temperature)
            free = tally.median((BASELINE[kind], temperature))
            rate = tally.median(key)
            sampled = tally.sampled.get(key, 0)
            rejected = (f"{tally.rejected.get(key, 0) / sampled:.1%}" if sampled else "-")
            whole = statistics.median(tally.whole[key]) if tally.whole.get(key) else float("nan")
            base = (BASELINE[kind], temperature)
            whole_free = (statistics.median(tally.whole[base])
                          if tally.whole.get(base) else float("nan"))
            print(f"{kind:<11}{temperature:>6.1f}{rate:>14.1f}{rate / free:>8.2f}x"
                  f"{len(tally.rates.get(key, [])):>6}{tally.short.get(key, 0):>7}{rejected:>10}"
                  f"{whole:>11.1f} t/s{whole / whole_free:>8.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-http", action="store_true")
    ap.add_argument("--no-engine", action="store_true")
    ap.add_argument("--omp-spin", action="store_true")
    args = ap.parse_args()
    omp_policy(args.omp_spin)
    print(f"started {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, pid {os.getpid()}")
    if not args.no_engine:
        report("in process (BatchedEngine)", bench_engine(args), args)
    if not args.no_http:
        report("over HTTP (openwen serve, batched engine)", bench_http(args), args)


if __name__ == "__main__":
    main()
