"""The HTTP API against raw llama-cpp-python: decode tokens/s, time-to-first-token overhead, and
``/v1/models`` under concurrent clients, in one run.

Starts the real server (``.venv/bin/openwen serve`` as a subprocess on 127.0.0.1, a free port,
the bundled SmolLM2 model, a fresh OPENWEN_HOME in a temporary directory, ``--threads`` threads,
n_ctx 2048) and loads the same model file with ``llama_cpp.Llama`` in this process (same threads,
n_ctx 2048, n_batch 512). The two never compute at the same time: runs alternate (raw, http, raw,
...), so machine noise hits both.

1. decode: the same rendered prompt, greedy, ``--tokens`` new tokens (the raw side decodes exactly
   as many as the server did: the server's ``usage`` counts them). Rate = (tokens - 1) / (time of
   the last token - time of the first); over HTTP, the times the first and last content chunks
   arrived. Target: HTTP / raw >= 0.95 (ratio of the medians; the ratio of the best runs is
   shown too: load only ever slows a run down, so on a busy machine it is the steadier one).
2. time to first token: HTTP (request sent -> first content chunk received, over a kept-alive
   connection) minus raw (prompt text -> first sampled token, tokenising included), per pair. Each
   pair puts its own run number at the start of the system prompt on both sides, so both pay the
   same full prefill (no prefix-cache hit on either); pairs alternate which side goes first.
   p50/p95 of each side and of the differences are printed. Target: p95 of the differences
   <= 15 ms.
3. ``GET /v1/models`` with ``--clients`` concurrent keep-alive connections, 20 requests each:
   latency p50/p95 and requests/s, beside ``GET /health`` under the same load (the anchor: the
   HTTP stack's own cost). The clients run in this process, on the same cores, so they are a
   minimal HTTP/1.1 client (microseconds per request); the same load through httpx.AsyncClient
   is shown too (its connection pool costs milliseconds of client CPU per request here).

    .venv/bin/python bench/api.py [--rounds 5] [--tokens 128] [--pairs 60] [--clients 50]
                                  [--threads 2] [--omp-passive] [--trace-stages]

Both sides run llama.cpp the same way: ``--threads`` threads for decode and prompt, n_batch 512,
the same weight buffers (plain CPU buffers on AMX CPUs: ``openwen.engines.llama_buffers``, which
both load through) and the same OpenMP wait policy, which is OpenMP's default (spinning), the
way ``openwen serve`` runs unless told otherwise. ``--omp-passive`` sets
``OMP_WAIT_POLICY=PASSIVE`` for both (an ``OMP_WAIT_POLICY`` already in the environment wins
either way): on a machine busier than its cores spinning starves the threads doing real work
(measured here at load ~5 on 2 cores: raw decode ~55 -> ~10 tok/s), while on a quiet one PASSIVE
halves the served decode (2026-12-02: 0.50x raw, TTFT +106 ms), so PASSIVE figures do not say how
the server runs. The policy in effect is printed with the figures.

``--trace-stages`` starts the server with ``OPENWEN_TRACE_STAGES`` (:mod:`openwen.stage_trace`)
and prints, for the time-to-first-token pairs, each stage's time in microseconds for the request
at the p50 and at the p95 of the differences, and each stage's p50/p95 over all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from openwen.formats import ChatFormat, format_for
from openwen.messages import Message
from openwen.models.store import bundled_model_path

ROOT = Path(__file__).resolve().parent.parent
OPENWEN = Path(sys.executable).parent / "openwen"  # the venv running this bench
N_CTX, N_BATCH = 2048, 512
DECODE_TARGET, TTFT_TARGET_MS = 0.95, 15.0
REQUESTS_PER_CLIENT = 20
SYSTEM = "You are a helpful assistant who answers clearly and in detail."
DECODE_PROMPT = ("Explain in detail, step by step, how a bicycle works, covering the frame, "
                 "wheels, gears, chain, brakes and the physics of balance.")
TTFT_PROMPT = "Name three uses of a lighthouse and say why each one matters to sailors."


def messages(user: str, run: int | None = None) -> list[dict[str, str]]:
    """System + user; a run number leads the system prompt so no two runs share a cached prefix."""
    system = SYSTEM if run is None else f"Session {run}. {SYSTEM}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


# -- the raw side -------------------------------------------------------------------------------


class RawModel:
    """``llama_cpp.Llama`` on the bundled model, with openwen's chat format for rendering (the
    server renders and tokenises the same way: see engines/llamacpp.py)."""

    def __init__(self, path: Path, threads: int):
        from openwen.engines.llama_buffers import llama_cpp_module

        self.llm = llama_cpp_module().Llama(model_path=str(path), n_ctx=N_CTX, n_threads=threads,
                         n_threads_batch=threads, n_batch=N_BATCH, verbose=False)
        self.format = self._chat_format()

    def _chat_format(self) -> ChatFormat:
        meta, model = self.llm.metadata, self.llm._model
        bos, eos = self.llm.token_bos(), self.llm.token_eos()
        return format_for(meta.get("tokenizer.chat_template"),
                          architecture=meta.get("general.architecture"),
                          bos_token=model.token_get_text(bos) if bos >= 0 else "",
                          eos_token=model.token_get_text(eos) if eos >= 0 else "",
                          model_name=meta.get("general.name"))

    def render(self, msgs: list[dict[str, str]]) -> str:
        return self.format.render([Message(m["role"], m["content"]) for m in msgs]).text

    def tokenize(self, text: str) -> list[int]:
        bos = self.llm.token_bos()
        bos_text = self.llm._model.token_get_text(bos) if bos >= 0 else ""
        add_bos = self.llm._model.add_bos_token() and not (bos_text and text.startswith(bos_text))
        return list(self.llm.tokenize(text.encode(), add_bos=add_bos, special=True))

    def run(self, text: str, max_tokens: int) -> tuple[float, float, int]:
        """(ttft s, decode tok/s, tokens): tokenise ``text``, decode greedily until an
        end-of-generation token or ``max_tokens``, the way the server's engine does."""
        import llama_cpp

        vocab = self.llm._model.vocab
        start = time.perf_counter()
        tokens = self.tokenize(text)
        first = last = 0.0
        count = 0
        for token in self.llm.generate(tokens, temp=0.0, reset=True):
            now = time.perf_counter()
            first = first or now
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                break
            count, last = count + 1, now
            if count >= max_tokens:
                break
        return first - start, rate(count, first, last), count

    def close(self) -> None:
        self.llm.close()


def rate(count: int, first: float, last: float) -> float:
    return (count - 1) / (last - first) if count > 1 and last > first else float("nan")


# -- the HTTP side ------------------------------------------------------------------------------


@dataclass
class HttpRun:
    ttft: float  # request sent -> first content chunk received, seconds
    rate: float  # decode tokens/s between the first and last content chunks
    completion_tokens: int
    prompt_tokens: int
    cached_tokens: int  # prompt tokens the server found in its KV cache
    content_chunks: int


def http_run(client: httpx.Client, msgs: list[dict[str, str]], max_tokens: int) -> HttpRun:
    """One streamed request; again once if the server had just closed the kept-alive connection
    (uvicorn closes one idle for 5 s: the raw side can take that long on a loaded machine)."""
    try:
        return http_once(client, msgs, max_tokens)
    except httpx.RemoteProtocolError:
        return http_once(client, msgs, max_tokens)


def http_once(client: httpx.Client, msgs: list[dict[str, str]], max_tokens: int) -> HttpRun:
    body = {"model": "smollm2", "messages": msgs, "max_tokens": max_tokens, "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True}}
    usage: dict[str, Any] = {}
    first = last = 0.0
    chunks = 0
    start = time.perf_counter()
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            now = time.perf_counter()
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(f"error event mid-stream: {chunk['error']}")
            if chunk.get("usage"):
                usage = chunk["usage"]
            if any(c.get("delta", {}).get("content") for c in chunk.get("choices", [])):
                first = first or now
                last, chunks = now, chunks + 1
    if not usage or not first:
        raise RuntimeError(f"stream ended without usage or content (usage={usage})")
    n = usage["completion_tokens"]
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    return HttpRun(first - start, rate(n, first, last), n, usage["prompt_tokens"], cached, chunks)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def openwen_server(home: Path, threads: int, trace: Path | None = None) -> Iterator[str]:
    """``openwen serve`` on 127.0.0.1 (a free port) until the block exits; yields its base URL.
    With ``trace`` the server writes per-request stage times there (:mod:`openwen.stage_trace`)."""
    port = free_port()
    # the buffer choice (the raw side reads it too) and the thread tuner, for experiments
    keep = ("OPENWEN_LLAMA_EXTRA_BUFFERS", "OPENWEN_ADAPTIVE_THREADS")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENWEN_") or k in keep}
    env.update(OPENWEN_HOME=str(home), OPENWEN_CONFIG=str(home / "config.toml"),
               OPENWEN_N_THREADS=str(threads), OPENWEN_N_CTX=str(N_CTX),
               OPENWEN_N_BATCH=str(N_BATCH))
    if trace is not None:
        env["OPENWEN_TRACE_STAGES"] = str(trace)
    log_path = home / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([str(OPENWEN), "serve", "--port", str(port)], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
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
        complaints = [line for line in log_path.read_text(errors="replace").splitlines()
                      if any(word in line for word in ("WARNING", "ERROR", "Traceback"))]
        for line in complaints[:20]:
            print(f"server log: {line}")


def wait_ready(url: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    """Until ``/health`` lists the preloaded model (60 s at most)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"openwen serve exited ({proc.returncode}):\n{log_path.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            health = httpx.get(url + "/health", timeout=2).json()
            if any(m.get("id") == "smollm2" for m in health.get("models", [])):
                return
        time.sleep(0.2)
    sys.exit(f"openwen serve was not ready within 60 s:\n{log_path.read_text()}")


# -- the three measurements ---------------------------------------------------------------------


def bench_decode(raw: RawModel, client: httpx.Client, args: argparse.Namespace
                 ) -> dict[str, Any]:
    msgs = messages(DECODE_PROMPT)
    text = raw.render(msgs)
    warm = http_run(client, msgs, args.tokens)  # also tells how many tokens the server decodes
    raw.run(text, 8)
    n_prompt = len(raw.tokenize(text))
    if n_prompt != warm.prompt_tokens:
        print(f"warning: prompt tokens differ: raw {n_prompt}, server {warm.prompt_tokens}")
    raws: list[float] = []
    https: list[HttpRun] = []
    raw_counts: set[int] = set()
    for _ in range(args.rounds):
        _, raw_rate, count = raw.run(text, warm.completion_tokens)
        raws.append(raw_rate)
        raw_counts.add(count)
        https.append(http_run(client, msgs, args.tokens))
    return {"raw": raws, "http": [h.rate for h in https], "n_prompt": n_prompt,
            "raw_tokens": sorted(raw_counts),
            "http_tokens": sorted({h.completion_tokens for h in https}),
            "http_chunks": sorted({h.content_chunks for h in https})}


def server_ttft(client: httpx.Client) -> tuple[float, float]:
    """(sum s, count) of the server's own time-to-first-token histogram (handler start to the
    engine's first event), from ``/metrics``."""
    totals = {"_sum": 0.0, "_count": 0.0}
    for line in client.get("/metrics").text.splitlines():
        name, _, value = line.partition(" ")
        for suffix in totals:
            if name.startswith("openwen_time_to_first_token_seconds" + suffix + "{"):
                totals[suffix] += float(value)
    return totals["_sum"], totals["_count"]


def bench_ttft(raw: RawModel, client: httpx.Client, pairs: int) -> dict[str, Any]:
    raw.run(raw.render(messages(TTFT_PROMPT, -1)), 2)
    http_run(client, messages(TTFT_PROMPT, -1), 2)
    raws: list[float] = []
    https: list[HttpRun] = []
    sum0, count0 = server_ttft(client)
    for run in range(pairs):
        msgs = messages(TTFT_PROMPT, run)
        if run % 2:  # alternate who goes first, so a drift in load hits both sides alike
            https.append(http_run(client, msgs, 2))
            raws.append(raw.run(raw.render(msgs), 1)[0])
        else:
            raws.append(raw.run(raw.render(msgs), 1)[0])
            https.append(http_run(client, msgs, 2))
    sum1, count1 = server_ttft(client)
    return {"raw": raws, "http": [h.ttft for h in https],
            "server_mean": (sum1 - sum0) / (count1 - count0) if count1 > count0 else float("nan"),
            "diff": [h.ttft - r for h, r in zip(https, raws, strict=True)],
            "n_prompt": sorted({h.prompt_tokens for h in https}),
            "cached": sorted({h.cached_tokens for h in https})}


async def fetch(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
                ) -> int:
    """One HTTP/1.1 request on a kept-alive connection; the status (the body is read, unused)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(head.split(b" ", 2)[1])


async def load_plain(url: str, path: str, clients: int) -> dict[str, Any]:
    """``clients`` connections, each sending REQUESTS_PER_CLIENT requests one after another,
    with a minimal client (a few microseconds per request) so the figure is the server's."""
    port = int(url.rsplit(":", 1)[1])
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(clients)]
    await asyncio.gather(*(fetch(r, w, request) for r, w in conns))  # warm every connection

    async def one_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                         ) -> list[tuple[float, int]]:
        out = []
        for _ in range(REQUESTS_PER_CLIENT):
            start = time.perf_counter()
            status = await fetch(reader, writer, request)
            out.append((time.perf_counter() - start, status))
        return out

    try:
        return await timed(one_client(r, w) for r, w in conns)
    finally:
        for _, writer in conns:
            writer.close()


async def load_httpx(url: str, path: str, clients: int) -> dict[str, Any]:
    """The same load through ``httpx.AsyncClient`` (its pool costs the client milliseconds of
    CPU per request here, on the same cores as the server)."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        await asyncio.gather(*(client.get(path) for _ in range(clients)))

        async def one_client() -> list[tuple[float, int]]:
            out = []
            for _ in range(REQUESTS_PER_CLIENT):
                start = time.perf_counter()
                response = await client.get(path)
                out.append((time.perf_counter() - start, response.status_code))
            return out

        return await timed(one_client() for _ in range(clients))


async def timed(clients: Iterable[Coroutine[Any, Any, list[tuple[float, int]]]]
                ) -> dict[str, Any]:
    start = time.perf_counter()
    results = await asyncio.gather(*clients)
    wall = time.perf_counter() - start
    flat = [r for rs in results for r in rs]
    return {"latency": [t for t, _ in flat], "errors": sum(s != 200 for _, s in flat),
            "rps": len(flat) / wall, "n": len(flat)}


async def bench_models(url: str, clients: int) -> dict[str, dict[str, Any]]:
    return {"models": await load_plain(url, "/v1/models", clients),
            "health": await load_plain(url, "/health", clients),
            "httpx": await load_httpx(url, "/v1/models", clients)}


# -- server stages (--trace-stages) -------------------------------------------------------------


def trace_file(home: Path, args: argparse.Namespace) -> Path | None:
    return home / "stages.jsonl" if args.trace_stages else None


def read_trace(path: Path | None) -> list[dict[str, int]]:
    if path is None or not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def stage_report(ttft: dict[str, Any]) -> None:
    """Per-stage server times (µs after the handler started, and each stage's own span) of the
    TTFT requests: those at the p50 and p95 of the differences, and p50/p95 of every stage."""
    records: list[dict[str, int]] = ttft["stages"][-len(ttft["diff"]):]
    if len(records) != len(ttft["diff"]):
        print(f"stages: {len(records)} traced requests for {len(ttft['diff'])} pairs; skipped")
        return
    order = sorted(range(len(records)), key=lambda i: ttft["diff"][i])
    at = {p: order[min(len(order) - 1, round(p / 100 * (len(order) - 1)))] for p in (50, 95)}
    names = sorted({k for r in records for k in r if not k.startswith("gc")},
                   key=lambda k: statistics.median(r.get(k, 0) for r in records))
    print("\nserver stages of the ttft requests, µs after the handler started "
          "(span: since the stage before)")
    print(f"  {'stage':<15} {'p50 req':>9} {'span':>7} {'p95 req':>9} {'span':>7}"
          f"   all: span p50 {'p95':>7}")
    for j, name in enumerate(names):
        spans = [r[name] - (r[names[j - 1]] if j else 0) for r in records if name in r
                 and (j == 0 or names[j - 1] in r)]
        row = f"  {name:<15}"
        for p in (50, 95):
            rec = records[at[p]]
            prev = rec.get(names[j - 1], 0) if j else 0
            row += f" {rec.get(name, -1):>9} {rec.get(name, 0) - prev:>7}"
        if spans:
            row += f"   {pct(spans, 50):>13.0f} {pct(spans, 95):>7.0f}"
        print(row)
    for p in (50, 95):
        rec = records[at[p]]
        print(f"  p{p} request: diff {ttft['diff'][at[p]] * 1000:+.1f} ms, "
              f"gc {rec['gc_us']} µs in {rec['gc_runs']} runs")
    gcs = [r["gc_us"] for r in records]
    print(f"  gc over all: {sum(1 for r in records if r['gc_runs'])} of {len(records)} requests "
          f"saw a collection; max {max(gcs)} µs")


# -- report -------------------------------------------------------------------------------------


def pct(values: list[float], p: int) -> float:
    """The p-th percentile (inclusive method; p95 of 20 values interpolates the top two)."""
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {cpu}"


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def ms(values: list[float], p: int) -> float:
    return pct(values, p) * 1000


def details(dec: dict[str, Any], ttft: dict[str, Any], load: dict[str, dict[str, Any]],
            args: argparse.Namespace, loads: list[str]) -> None:
    print(f"\nllama.cpp threads {args.threads} on both sides, OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY', '(unset)')}")
    print(f"machine: {machine()}; load average (1/5/15 min) at start {loads[0]}, "
          f"after decode {loads[1]}, after ttft {loads[2]}, at end {loads[3]}")
    print(f"decode: prompt {dec['n_prompt']} tokens; generated raw {dec['raw_tokens']}, "
          f"http {dec['http_tokens']} tokens ({dec['http_chunks']} content chunks); "
          f"{args.rounds} rounds")
    print(f"  raw  tok/s: {' '.join(f'{x:.1f}' for x in dec['raw'])}")
    print(f"  http tok/s: {' '.join(f'{x:.1f}' for x in dec['http'])}")
    print(f"ttft: {args.pairs} pairs, prompt {ttft['n_prompt']} tokens of which the server had "
          f"{ttft['cached']} cached; raw median {statistics.median(ttft['raw']) * 1000:.1f} ms, "
          f"http median {statistics.median(ttft['http']) * 1000:.1f} ms")
    print(f"  http - raw ms: {' '.join(f'{x * 1000:+.1f}' for x in ttft['diff'])}")
    for side in ("raw", "http", "diff"):
        print(f"  {side:>4}: p50 {ms(ttft[side], 50):+.1f} ms, p95 {ms(ttft[side], 95):+.1f} ms, "
              f"min {min(ttft[side]) * 1000:+.1f} ms")
    http_mean, raw_mean = statistics.mean(ttft["http"]), statistics.mean(ttft["raw"])
    print(f"  means: http {http_mean * 1000:.1f} ms, raw {raw_mean * 1000:.1f} ms, the server's "
          f"own (/metrics: handler start to first engine event) {ttft['server_mean'] * 1000:.1f}"
          f" ms, so {(http_mean - ttft['server_mean']) * 1000:.1f} ms outside the handler "
          f"(client, HTTP, body parsing, SSE)")
    for name, got in load.items():
        print(f"load {name}: {got['n']} requests from {args.clients} clients, "
              f"{got['errors']} not 200")


def table(rows: list[tuple[str, ...]]) -> None:
    header = ("figure", "openwen HTTP", "anchor", "ratio", "target", "")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def report(dec: dict[str, Any], ttft: dict[str, Any], load: dict[str, dict[str, Any]],
           args: argparse.Namespace, loads: list[str]) -> None:
    details(dec, ttft, load, args, loads)
    raw_r, http_r = statistics.median(dec["raw"]), statistics.median(dec["http"])
    ratio = http_r / raw_r
    d50, d95 = ms(ttft["diff"], 50), ms(ttft["diff"], 95)
    models, health, via_httpx = load["models"], load["health"], load["httpx"]
    m95, h95 = ms(models["latency"], 95), ms(health["latency"], 95)
    n = args.clients
    print()
    table([
        ("decode tok/s (median)", f"{http_r:.1f}", f"{raw_r:.1f} raw", f"{ratio:.3f}x",
         f">= {DECODE_TARGET}x", verdict(ratio >= DECODE_TARGET)),
        ("decode tok/s (best run)", f"{max(dec['http']):.1f}", f"{max(dec['raw']):.1f} raw",
         f"{max(dec['http']) / max(dec['raw']):.3f}x", "", ""),
        ("ttft overhead p50", f"{d50:+.1f} ms", "raw ttft", "", "", ""),
        ("ttft overhead p95", f"{d95:+.1f} ms", "raw ttft", "", f"<= {TTFT_TARGET_MS:g} ms",
         verdict(d95 <= TTFT_TARGET_MS)),
        (f"/v1/models p50, {n} clients", f"{ms(models['latency'], 50):.1f} ms",
         f"{ms(health['latency'], 50):.1f} ms /health", "", "", ""),
        (f"/v1/models p95, {n} clients", f"{m95:.1f} ms", f"{h95:.1f} ms /health",
         f"{m95 / h95:.2f}x", "", ""),
        ("/v1/models throughput", f"{models['rps']:.0f} req/s",
         f"{health['rps']:.0f} req/s /health", f"{models['rps'] / health['rps']:.2f}x", "", ""),
        (f"/v1/models p95, {n} httpx clients", f"{ms(via_httpx['latency'], 95):.1f} ms",
         f"({via_httpx['rps']:.0f} req/s)", "", "", ""),
    ])
    command = (f"bench/api.py --rounds {args.rounds} --tokens {args.tokens} "
               f"--pairs {args.pairs} --clients {n} --threads {args.threads}"
               + (" --omp-passive" if args.omp_passive else ""))
    policy = os.environ.get("OMP_WAIT_POLICY", "unset")
    print("\nsummary (for bench/README.md):")
    print(f"| {datetime.date.today()} | API: HTTP streaming decode {http_r:.1f} tok/s; TTFT "
          f"overhead p50 {d50:+.1f} ms, p95 {d95:+.1f} ms; /v1/models p95 {m95:.1f} ms at {n} "
          f"clients ({models['rps']:.0f} req/s; /health {h95:.1f} ms) | raw llama-cpp-python "
          f"{raw_r:.1f} tok/s | {ratio:.2f}x | `{command}` | {machine()}, "
          f"OMP_WAIT_POLICY {policy}, load {loads[0]} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="decode runs per side")
    ap.add_argument("--tokens", type=int, default=128, help="max_tokens of a decode run")
    ap.add_argument("--pairs", type=int, default=60, help="time-to-first-token pairs")
    ap.add_argument("--clients", type=int, default=50, help="concurrent /v1/models clients")
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp threads, both sides")
    ap.add_argument("--omp-passive", action="store_true",
                    help="OMP_WAIT_POLICY=PASSIVE on both sides rather than OpenMP's spinning "
                         "default (the server's); an OMP_WAIT_POLICY already set is kept")
    ap.add_argument("--omp-spin", action="store_true",
                    help="the default (kept so older commands still run)")
    ap.add_argument("--trace-stages", action="store_true",
                    help="per-stage server times of the TTFT requests (openwen.stage_trace)")
    args = ap.parse_args()
    if args.omp_passive:  # before llama.cpp (and libgomp) loads, here and in the server
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    started = time.monotonic()
    loads = [load()]
    raw = RawModel(bundled_model_path(), args.threads)
    with tempfile.TemporaryDirectory(prefix="openwen-bench-") as home, \
            openwen_server(Path(home), args.threads, trace_file(Path(home), args)) as url, \
            httpx.Client(base_url=url, timeout=120) as client:
        dec = bench_decode(raw, client, args)
        loads.append(load())
        traced = read_trace(trace_file(Path(home), args))
        ttft = bench_ttft(raw, client, args.pairs)
        ttft["stages"] = read_trace(trace_file(Path(home), args))[len(traced):]
        loads.append(load())
        raw.close()
        served = asyncio.run(bench_models(url, args.clients))
    loads.append(load())
    report(dec, ttft, served, args, loads)
    if ttft["stages"]:
        stage_report(ttft)
    print(f"(took {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
