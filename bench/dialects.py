"""Dialect overhead: decode tokens/s and time to first token through each API dialect (OpenAI
Responses, Anthropic Messages, Ollama) beside direct Chat Completions, in one run.

Starts one real ``openwen serve`` (a subprocess on 127.0.0.1, a free port, the bundled SmolLM2,
a fresh OPENWEN_HOME, n_ctx 2048) and streams the same question through each dialect with
httpx (raw HTTP, so no SDK's parsing cost is counted): the same system prompt and user message,
greedy, ``--tokens`` new tokens. The prompt renders to the same tokens in every dialect, so
after one warm-up run each, every run hits the prefix cache the same way: the time to first
token is then mostly the dialect's own path (parse, translate, render, frame). Each round runs
every dialect once, in a rotated order, so machine noise hits all of them.

- decode: (completion tokens - 1) / (last content delta - first content delta), per run;
  target: each dialect's median >= 0.97x Chat Completions' median.
- TTFT: request sent -> first content delta received; target: each dialect's median minus Chat
  Completions' median <= 5 ms.

    python bench/dialects.py [--rounds 8] [--tokens 96] [--threads 2] [--omp-spin]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from api import free_port, load, machine, wait_ready

DECODE_TARGET, TTFT_TARGET_MS = 0.97, 5.0
SYSTEM = "You are a helpful assistant who answers clearly and in detail."
QUESTION = ("Explain in detail, step by step, how a bicycle works, covering the frame, wheels, "
            "gears, chain, brakes and the physics of balance.")


@dataclass
class Run:
    ttft: float  # seconds
    rate: float  # tokens/s
    tokens: int


def _timed(client: httpx.Client, path: str, body: dict[str, Any],
           delta: Callable[[str], str | None], count: Callable[[list[str]], int]) -> Run:
    """Stream ``body`` to ``path``; ``delta(line)`` is the content text a line carries (None:
    not content), ``count(lines)`` the completion tokens the stream reported."""
    lines: list[str] = []
    first = last = 0.0
    start = time.perf_counter()
    with client.stream("POST", path, json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line:
                continue
            now = time.perf_counter()
            lines.append(line)
            if delta(line):
                first = first or now
                last = now
    tokens = count(lines)
    if not first or tokens < 2:
        raise RuntimeError(f"{path}: no content streamed ({lines[-3:]})")
    return Run(first - start, (tokens - 1) / (last - first), tokens)


def _data(line: str) -> dict[str, Any] | None:
    if not line.startswith("data: ") or line == "data: [DONE]":
        return None
    data: dict[str, Any] = json.loads(line[6:])
    return data


def chat(client: httpx.Client, n: int) -> Run:
    body = {"model": "smollm2", "max_tokens": n, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "system", "content": SYSTEM},
                         {"role": "user", "content": QUESTION}]}

    def delta(line: str) -> str | None:
        data = _data(line)
        return next((c["delta"].get("content") for c in (data or {}).get("choices", [])
                     if c.get("delta", {}).get("content")), None)

    def count(lines: list[str]) -> int:
        return next(d["usage"]["completion_tokens"] for d in map(_data, reversed(lines))
                    if d and d.get("usage"))

    return _timed(client, "/v1/chat/completions", body, delta, count)


def responses(client: httpx.Client, n: int) -> Run:
    body = {"model": "smollm2", "max_output_tokens": n, "temperature": 0, "stream": True,
            "store": False, "instructions": SYSTEM, "input": QUESTION}

    def delta(line: str) -> str | None:
        data = _data(line)
        return data.get("delta") if data and data.get("type") == "response.output_text.delta" \
            else None

    def count(lines: list[str]) -> int:
        return next(d["response"]["usage"]["output_tokens"] for d in map(_data, reversed(lines))
                    if d and d.get("type") in ("response.completed", "response.incomplete"))

    return _timed(client, "/v1/responses", body, delta, count)


def anthropic(client: httpx.Client, n: int) -> Run:
    body = {"model": "smollm2", "max_tokens": n, "temperature": 0, "stream": True,
            "system": SYSTEM, "messages": [{"role": "user", "content": QUESTION}]}

    def delta(line: str) -> str | None:
        data = _data(line)
        return data["delta"].get("text") if data and data.get("type") == "content_block_delta" \
            else None

    def count(lines: list[str]) -> int:
        return next(d["usage"]["output_tokens"] for d in map(_data, reversed(lines))
                    if d and d.get("type") == "message_delta")

    return _timed(client, "/v1/messages", body, delta, count)


def ollama(client: httpx.Client, n: int) -> Run:
    body = {"model": "smollm2", "stream": True,
            "options": {"num_predict": n, "temperature": 0},
            "messages": [{"role": "system", "content": SYSTEM},
                         {"role": "user", "content": QUESTION}]}

    def delta(line: str) -> str | None:
        data = json.loads(line)
        return None if data.get("done") else data.get("message", {}).get("content")

    def count(lines: list[str]) -> int:
        return int(json.loads(lines[-1])["eval_count"])

    return _timed(client, "/api/chat", body, delta, count)


DIALECTS: dict[str, Callable[[httpx.Client, int], Run]] = {
    "chat completions": chat, "responses": responses, "anthropic": anthropic, "ollama": ollama}


@contextlib.contextmanager
def server(home: Path, threads: int) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENWEN_")}
    env.update(OPENWEN_HOME=str(home), OPENWEN_CONFIG=str(home / "config.toml"),
               OPENWEN_N_THREADS=str(threads), OPENWEN_N_CTX="2048")
    log_path = home / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "openwen", "serve", "--port", str(port)],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, log_path)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def measure(client: httpx.Client, rounds: int, tokens: int) -> dict[str, list[Run]]:
    names = list(DIALECTS)
    for name in names:  # warm-up: the prompt into the prefix cache, every path touched once
        DIALECTS[name](client, 8)
    runs: dict[str, list[Run]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            runs[name].append(DIALECTS[name](client, tokens))
    return runs


def report(runs: dict[str, list[Run]], args: argparse.Namespace, loads: list[str]) -> None:
    base = runs["chat completions"]
    base_rate = statistics.median(r.rate for r in base)
    base_ttft = statistics.median(r.ttft for r in base) * 1000
    print(f"machine: {machine()}; threads {args.threads}; OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY', '(unset: spin)')}; load {' -> '.join(loads)}")
    print(f"{args.rounds} rounds, {args.tokens} tokens a run (tokens streamed: "
          f"{sorted({r.tokens for rs in runs.values() for r in rs})})")
    print(f"{'dialect':<18}{'decode tok/s':>14}{'vs chat':>9}{'TTFT ms':>10}{'+ms':>8}  verdict")
    for name, rs in runs.items():
        rate = statistics.median(r.rate for r in rs)
        ttft = statistics.median(r.ttft for r in rs) * 1000
        ok = rate / base_rate >= DECODE_TARGET and ttft - base_ttft <= TTFT_TARGET_MS
        verdict = "(anchor)" if name == "chat completions" else ("ok" if ok else "MISSED")
        print(f"{name:<18}{rate:>14.1f}{rate / base_rate:>8.3f}x{ttft:>10.1f}"
              f"{ttft - base_ttft:>+8.1f}  {verdict}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=8, help="runs per dialect")
    ap.add_argument("--tokens", type=int, default=96, help="new tokens a run")
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    ap.add_argument("--omp-spin", action="store_true",
                    help="leave OMP_WAIT_POLICY unset (OpenMP spins) rather than PASSIVE")
    args = ap.parse_args()
    if not args.omp_spin:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    started = time.monotonic()
    loads = [load()]
    with tempfile.TemporaryDirectory(prefix="openwen-bench-") as home, \
            server(Path(home), args.threads) as url, \
            httpx.Client(base_url=url, timeout=300) as client:
        runs = measure(client, args.rounds, args.tokens)
    loads.append(load())
    report(runs, args, loads)
    print(f"(took {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
