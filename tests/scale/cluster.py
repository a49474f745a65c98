"""A small cluster of real processes for the scale-out tests: an upstream (openwen in engine
role serving the bundled model), openwen instances with no local model on one PostgreSQL
database, and an HAProxy balancing them round robin (no stickiness, health checks).

Everything listens on 127.0.0.1 on free ports; every process is the test's own and is ended by
its id.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

STARTUP_TIMEOUT = 120.0
LEASE = 4.0  # instance lease in these tests: a dead instance's answers are marked within ~5 s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENWEN_")}
    env.update({"OPENWEN_HOME": str(home), "OPENWEN_N_THREADS": "2", "OPENWEN_N_CTX": "2048",
                "XDG_CONFIG_HOME": str(home / "config"), "OMP_WAIT_POLICY": "PASSIVE"})
    return env


class Process:
    """One subprocess with a log file, ended by its own pid."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path,
                 ready_url: str | None):
        self.name, self.args, self.env, self.log, self.ready_url = name, args, env, log, ready_url
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = self.log.open("ab")
        self.popen = subprocess.Popen(self.args, env=self.env, stdout=out,
                                      stderr=subprocess.STDOUT)
        out.close()
        if self.ready_url:
            self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        assert self.popen is not None and self.ready_url is not None
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.ready_url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not start: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(timeout=30)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def serve_args(port: int) -> list[str]:
    return [sys.executable, "-m", "openwen", "serve", "--host", "127.0.0.1", "--port", str(port),
            "--graceful-timeout", "1"]


def upstream(home: Path) -> Process:
    """openwen in engine role: the bundled model and the local embedding model."""
    port = free_port()
    return Process("upstream", serve_args(port), base_env(home), home / "server.log",
                   f"http://127.0.0.1:{port}/health")


def upstream_port(process: Process) -> int:
    return int(process.args[process.args.index("--port") + 1])


def instance(name: str, home: Path, database_url: str, upstream_url: str) -> Process:
    """An openwen instance with no local model: chat and embeddings come from the upstream."""
    port = free_port()
    env = base_env(home)
    env.update({
        "OPENWEN_DATABASE_URL": database_url,
        "OPENWEN_LOCAL_MODELS": "false",
        "OPENWEN_MODEL": "smollm2",
        "OPENWEN_EMBEDDING_MODEL": "all-minilm-l6-v2",
        "OPENWEN_ENGINES": json.dumps([{
            "name": "engine", "base_url": upstream_url, "models": ["smollm2"],
            "embedding_models": ["all-minilm-l6-v2"], "connect_timeout": 2, "retries": 0}]),
        "OPENWEN_INSTANCE_LEASE": str(LEASE),
        "OPENWEN_UPSTREAM_CHECK_INTERVAL": "1",
    })
    return Process(name, serve_args(port), env, home / "server.log",
                   f"http://127.0.0.1:{port}/health")


def instance_url(process: Process) -> str:
    return f"http://127.0.0.1:{process.args[process.args.index('--port') + 1]}"


HAPROXY_CONFIG = """global
    maxconn 512
defaults
    mode http
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout http-keep-alive 5s
    retries 2
    option redispatch
frontend openwen
    bind 127.0.0.1:{port}
    default_backend instances
backend instances
    balance roundrobin
    option forwardfor
    option httpchk
    http-check send meth GET uri /health ver HTTP/1.1 hdr Host 127.0.0.1
    http-check expect status 200
{servers}
"""


def haproxy(home: Path, backends: dict[str, str]) -> tuple[Process, str]:
    """Our own haproxy process (foreground) over ``backends`` (name: host:port)."""
    port = free_port()
    servers = "\n".join(f"    server {name} {address} check inter 500ms fall 2 rise 1"
                        for name, address in backends.items())
    config = home / "haproxy.cfg"
    home.mkdir(parents=True, exist_ok=True)
    config.write_text(HAPROXY_CONFIG.format(port=port, servers=servers))
    process = Process("haproxy", ["haproxy", "-db", "-f", str(config)], dict(os.environ),
                      home / "haproxy.log", f"http://127.0.0.1:{port}/health")
    return process, f"http://127.0.0.1:{port}"


# -- talking to the web app ---------------------------------------------------------------------


def sse_events(response: httpx.Response) -> Any:
    """(event, data) pairs of a web app answer stream."""
    name = ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            yield name, json.loads(line[6:])
