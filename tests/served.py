"""A real ``openwen serve`` in its own process (the real bundled model, a real SQLite file in a
fresh home, 127.0.0.1 and a free port), for tests that need a whole server process. Imported as
``served`` (this folder is on the test path)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

STARTUP_TIMEOUT = 180.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    """A running ``openwen serve``: its URL, home and environment (for ``openwen`` CLI calls)."""

    url: str
    port: int
    home: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path

    def cli(self, *args: str) -> str:
        """Run ``openwen ARGS`` against the same home; its stdout."""
        return run_cli(self.env, *args)

    def alive(self) -> bool:
        if self.process.poll() is not None:
            return False
        return httpx.get(self.url + "/health", timeout=30).status_code == 200

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def environment(home: Path, settings: dict[str, str]) -> dict[str, str]:
    """The environment of a server (or CLI call) on ``home``: this one without its ``OPENWEN_``
    variables, then the home, small context, 2 threads and ``settings`` (names as in
    :func:`serve`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENWEN_")}
    env.update({"OPENWEN_HOME": str(home), "XDG_CONFIG_HOME": str(home / "config"),
                "OPENWEN_N_CTX": "2048", "OPENWEN_N_THREADS": "2"})
    env.update({k if k.startswith("OPENWEN_") else f"OPENWEN_{k.upper()}": v
                for k, v in settings.items()})
    return env


def run_cli(env: dict[str, str], *args: str) -> str:
    """Run ``openwen ARGS`` in ``env``; its stdout."""
    done = subprocess.run([sys.executable, "-m", "openwen", *args], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def serve(home: Path, *args: str, **settings: str) -> Iterator[Served]:
    """``openwen serve ARGS`` with ``OPENWEN_<NAME>`` settings, until the generator is closed."""
    yield from _run([sys.executable, "-m", "openwen", "serve", *args, "--port"], home, settings)


def serve_script(script: Path, home: Path, **settings: str) -> Iterator[Served]:
    """``python SCRIPT PORT`` (tests/webapp/live_server.py); names starting with ``OPENWEN_``
    are passed as they are, others as settings."""
    yield from _run([sys.executable, str(script)], home, settings)


def _run(command: list[str], home: Path, settings: dict[str, str]) -> Iterator[Served]:
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = environment(home, settings)
    log = home / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen([*command, str(port)], env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    served = Served(f"http://127.0.0.1:{port}", port, home, env, process, log)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            assert process.poll() is None, f"openwen serve exited:\n{served.log_tail()}"
            try:
                if httpx.get(served.url + "/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "openwen serve did not start"
            time.sleep(0.3)
        yield served
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
