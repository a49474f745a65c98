#!/usr/bin/env python3
"""What openwen costs as a gateway: its remote engine relaying an upstream that streams as fast
as it can, against the same upstream reached directly, in one run.

A stand-in upstream (a raw asyncio HTTP server in its own process on 127.0.0.1) answers
``POST /v1/chat/completions`` with ``--tokens`` SSE chunks, as fast as the socket takes them.
``openwen serve`` (no local model, ``[[engines]]`` pointing at the stand-in; 1 and 2 workers)
relays it on ``/v1/chat/completions``. A lean asyncio client (its own process) opens 1, 16, 64
and 256 concurrent streams, first straight to the stand-in, then through openwen, level by
level, and records every chunk's arrival time.

Figures per level: aggregate tokens/s (direct and relayed, and the ratio), added time to first
token (relayed p50 minus direct p50), added inter-token latency (p50 and p99 of relayed gaps
minus the same percentile of direct gaps), openwen's CPU time per relayed token (all its
processes), errors, and the fewest tokens any stream got (starvation check).

    bench/gateway.py                    # workers 1 and 2, levels 1 16 64 256
    bench/gateway.py --workers 1 --levels 1 64 --tokens 200
    bench/gateway.py --baseline /tmp/old-checkout      # the same levels through an older openwen
    bench/gateway.py --floor     # and through the leanest FastAPI relay (the framework's cost)

Targets on this 2-core machine: at 64 streams relayed >= 0.9x direct, p99 added ITL <= 10 ms;
at 256 streams no errors and no stream starved.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from starlette.requests import Request  # the floor relay's handler (annotations are strings)

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "tok"


# -- the stand-in upstream ----------------------------------------------------------------------


def chunk(payload: dict[str, Any]) -> bytes:
    data = b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


def upstream_main(port: int, tokens: int) -> None:
    """Serve the stand-in until killed."""
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0,
            "model": "bench"}
    first = chunk({**base, "choices": [{"index": 0, "delta": {"role": "assistant",
                                                              "content": ""}}]})
    token = chunk({**base, "choices": [{"index": 0, "delta": {"content": TOKEN}}]})
    last = chunk({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                  "usage": {"prompt_tokens": 5, "completion_tokens": tokens,
                            "total_tokens": tokens + 5}})
    raw_done = b"data: [DONE]\n\n"
    done = b"%x\r\n%s\r\n0\r\n\r\n" % (len(raw_done), raw_done)
    models = json.dumps({"object": "list", "data": [{"id": "bench", "object": "model",
                                                     "owned_by": "bench"}]}).encode()
    head = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\ncache-control: no-cache\r\n\r\n")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in request.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if length:
                    await reader.readexactly(length)
                if request.startswith(b"GET"):
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                                 b"content-length: %d\r\n\r\n%s" % (len(models), models))
                    await writer.drain()
                    continue
                writer.write(head + first)
                for _ in range(tokens):
                    writer.write(token)
                    await writer.drain()
                writer.write(last + done)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def run() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(run())


# -- the floor: the leanest relay FastAPI can be ------------------------------------------------


def floor_app() -> Any:
    """What any gateway on FastAPI + uvicorn costs at least: the request body and the upstream's
    SSE bytes passed through unread (aiohttp, one pooled session), no auth, parsing or
    re-encoding. Run with ``--floor``, beside openwen, to see how much of a relay's cost is
    the framework's and how much openwen's own."""
    import aiohttp
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    upstream = f"http://127.0.0.1:{os.environ['GATEWAY_FLOOR_UPSTREAM']}/v1/chat/completions"
    app = FastAPI()
    sessions: list[aiohttp.ClientSession] = []

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    async def relay(request: Request) -> StreamingResponse:  # Request: imported at the top
        if not sessions:
            sessions.append(aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=4096), cookie_jar=aiohttp.DummyCookieJar()))
        response = await sessions[0].post(upstream, data=await request.body(),
                                          headers={"content-type": "application/json"})

        async def body() -> Any:
            try:
                async for data in response.content.iter_any():
                    yield data
            finally:
                response.release()

        return StreamingResponse(body(), media_type="text/event-stream")

    return app


def start_floor(upstream_port: int, workers: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, "GATEWAY_FLOOR_UPSTREAM": str(upstream_port)}
    args = [sys.executable, "-m", "uvicorn", "gateway:floor_app", "--factory", "--app-dir",
            str(Path(__file__).parent), "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--log-level", "info"]  # logs requests, as openwen does
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    wait_port(port)
    return process, port


# -- the client ---------------------------------------------------------------------------------


async def one_stream(port: int, body: bytes) -> tuple[float, list[float], str | None]:
    """(request start, arrival time of each content chunk, error)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    arrivals: list[float] = []
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                     b"content-type: application/json\r\naccept: text/event-stream\r\n"
                     b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        status = await reader.readline()
        if b" 200 " not in status:
            writer.close()
            return start, arrivals, status.decode(errors="replace").strip()
        marker = TOKEN.encode()
        while True:
            line = await reader.readline()
            if not line:
                break
            if line.startswith(b"data: {") and marker in line:
                # a relay may pass on in one chunk tokens that reached it together
                # ("completion_tokens" and the like in a usage chunk are not tokens)
                count = line.count(marker) - line.count(b"_tokens")
                arrivals.extend([loop.time()] * count)
            elif line.startswith(b"data: [DONE]"):
                break
        writer.close()
    except OSError as exc:
        return start, arrivals, f"{type(exc).__name__}: {exc}"
    return start, arrivals, None


async def level(port: int, streams: int, model: str) -> dict[str, Any]:
    body = json.dumps({"model": model, "stream": True,
                       "messages": [{"role": "user", "content": "go"}]}).encode()
    t0 = time.perf_counter()
    results = await asyncio.gather(*(one_stream(port, body) for _ in range(streams)))
    wall = time.perf_counter() - t0
    ttft = [a[0] - s for s, a, _ in results if a]
    gaps = [b - a for _, arr, _ in results for a, b in zip(arr, arr[1:], strict=False)]
    counts = [len(a) for _, a, _ in results]
    return {"wall": wall, "tokens": sum(counts), "ttft": ttft, "gaps": gaps,
            "min_tokens": min(counts), "errors": [e for _, _, e in results if e]}


def client_main(port: int, streams: int, model: str) -> None:
    result = asyncio.run(level(port, streams, model))
    print(json.dumps(result))


# -- orchestration ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, path: str = "/health", limit: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"nothing answered on port {port}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its children (uvicorn's workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def run_client(port: int, streams: int, model: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--client", str(port), str(streams), model],
                         capture_output=True, text=True, timeout=300, check=True)
    return dict(json.loads(out.stdout))


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start_openwen(upstream_port: int, workers: int, home: Path, src: Path
                  ) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENWEN_")}
    env.update({"OPENWEN_HOME": str(home), "XDG_CONFIG_HOME": str(home / "config"),
                "OPENWEN_LOCAL_MODELS": "false",
                "OPENWEN_ENGINES": json.dumps([{
                    "name": "standin", "models": ["bench"],
                    "base_url": f"http://127.0.0.1:{upstream_port}/v1"}]),
                "OPENWEN_MAX_QUEUE": "1024",
                "PYTHONPATH": f"{src}:{env.get('PYTHONPATH', '')}"})
    args = [sys.executable, "-m", "openwen", "serve", "--port", str(port), "--workers",
            str(workers)]
    log = (home / "server.log").open("ab")
    process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_port(port)
    return process, port


def report(streams: int, workers: int, direct: dict[str, Any], relayed: dict[str, Any],
           cpu: float, variant: str) -> dict[str, Any]:
    d_tps = direct["tokens"] / direct["wall"]
    r_tps = relayed["tokens"] / relayed["wall"]
    row = {
        "variant": variant, "workers": workers, "streams": streams,
        "direct_tok_s": round(d_tps), "relayed_tok_s": round(r_tps),
        "ratio": round(r_tps / d_tps, 3),
        "added_ttft_ms": round((statistics.median(relayed["ttft"])
                                - statistics.median(direct["ttft"])) * 1000, 2),
        "added_itl_p50_ms": round((pct(relayed["gaps"], 0.5) - pct(direct["gaps"], 0.5))
                                  * 1000, 3),
        "added_itl_p99_ms": round((pct(relayed["gaps"], 0.99) - pct(direct["gaps"], 0.99))
                                  * 1000, 3),
        "cpu_us_per_token": round(cpu / max(1, relayed["tokens"]) * 1e6, 1),
        "errors": len(relayed["errors"]) + len(direct["errors"]),
        "min_tokens_per_stream": relayed["min_tokens"],
    }
    print(json.dumps(row), flush=True)
    return row


def measure(upstream_port: int, workers: int, levels: list[int], variant: str, src: Path
            ) -> list[dict[str, Any]]:
    """Each level straight to the upstream, then relayed by the openwen in ``src`` (or by the
    floor relay)."""
    rows = []
    with tempfile.TemporaryDirectory() as home:
        if variant == "floor":
            server, port = start_floor(upstream_port, workers)
        else:
            server, port = start_openwen(upstream_port, workers, Path(home), src)
        try:
            run_client(port, 4, "bench")  # warm up connections and code paths
            for streams in levels:
                direct = run_client(upstream_port, streams, "bench")
                before = cpu_seconds(server.pid)
                relayed = run_client(port, streams, "bench")
                cpu = cpu_seconds(server.pid) - before
                rows.append(report(streams, workers, direct, relayed, cpu, variant))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--tokens", type=int, default=200, help="tokens per stream")
    parser.add_argument("--baseline", type=Path,
                        help="also relay through the openwen of this checkout (e.g. a worktree of "
                             "an older commit), level by level beside this one")
    parser.add_argument("--floor", action="store_true",
                        help="also relay through the leanest FastAPI relay (bytes through, "
                             "nothing parsed): the framework's own cost, level by level")
    args = parser.parse_args()
    variants = [("this", ROOT / "src")]
    if args.baseline:
        variants.append(("baseline", args.baseline.resolve() / "src"))
    if args.floor:
        variants.append(("floor", ROOT / "src"))
    upstream_port = free_port()
    upstream = subprocess.Popen([sys.executable, __file__, "--upstream", str(upstream_port),
                                 str(args.tokens)])
    rows = []
    try:
        wait_port(upstream_port, "/v1/models")
        for workers in args.workers:
            for variant, src in variants:
                rows.extend(measure(upstream_port, workers, args.levels, variant, src))
    finally:
        upstream.kill()
        upstream.wait()
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    for row in rows:
        who = f"{row['variant']}, {row['workers']} worker(s)"
        if row["streams"] == 64:
            ok = row["ratio"] >= 0.9 and row["added_itl_p99_ms"] <= 10
            print(f"64 streams, {who}: {'MET' if ok else 'NOT MET'}")
        if row["streams"] == 256:
            ok = row["errors"] == 0 and row["min_tokens_per_stream"] == args.tokens
            print(f"256 streams, {who}: {'MET' if ok else 'NOT MET'}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--upstream":
        upstream_main(int(sys.argv[2]), int(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--client":
        client_main(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    else:
        main()
