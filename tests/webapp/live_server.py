"""A real openwen server in a subprocess (uvicorn on 127.0.0.1, a free port, its own data dir).

Run as a script it serves ``create_app(settings)`` with the web app installed (when
``create_app`` does not install it itself yet); with ``OPENWEN_TEST_SCRIPTED_ENGINE=1`` in its
environment the answers come from the rule-based scripted engine instead of the bundled model
(for tool and citation flows a 135M model cannot be steered through). Tests and ``bench/ui.py``
use :class:`LiveServer`.
"""

from __future__ import annotations

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


SCRIPTED_ENV = "OPENWEN_TEST_SCRIPTED_ENGINE"  # set: answers come from webapp_helpers.RuleEngine


def app_factory() -> Any:
    from openwen.config import load_settings
    from openwen.server.application import create_app
    from openwen.server.webapp import install

    settings = load_settings().settings
    service = None
    if os.environ.get(SCRIPTED_ENV):
        from webapp_helpers import RuleEngine, ScriptedRegistry

        from openwen.chat.service import ChatService

        service = ChatService(settings, registry=ScriptedRegistry(RuleEngine()))  # type: ignore[arg-type]
    app = create_app(settings, service=service)
    if not hasattr(app.state, "webapp"):  # create_app does not install the web app yet
        install(app, settings, app.state.service)
    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """``with LiveServer(home) as server: server.url``. ``kill()`` sends SIGKILL."""

    def __init__(self, home: Path, *, env: dict[str, str] | None = None, log: Path | None = None):
        self.home = Path(home)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_env = env or {}
        self.log_path = log or self.home / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> LiveServer:
        self.home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENWEN_")}
        env.update(
            {
                "OPENWEN_HOME": str(self.home),
                "OPENWEN_HOST": "127.0.0.1",
                "OPENWEN_PORT": str(self.port),
                "OPENWEN_N_THREADS": "2",
                "OPENWEN_N_CTX": "2048",
                **self.extra_env,
            }
        )
        env["XDG_CONFIG_HOME"] = str(self.home / "config")
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, __file__, str(self.port)],
            env=env,
            stdout=log,
            stderr=log,
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited; see {self.log_path}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/api/session", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the server did not start; see {self.log_path}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app_factory(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
