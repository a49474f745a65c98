"""``openwen serve --ollama-port``: a real server process with a second listener, driven by the
official ``ollama`` client. The Ollama port answers as an Ollama server does at its root, serves
the Ollama and ``/v1`` routes under the same API-key rules as the main port, and nothing of the
web app."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import ollama
import pytest
from typer.testing import CliRunner

from openwen.cli.main import app as cli

STARTUP_SECONDS = 180.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Ports:
    main: str
    ollama: str
    key: str


def _openwen(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "openwen", *args], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ports]:
    home = tmp_path_factory.mktemp("ollama-port")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENWEN_")}
    env.update({"OPENWEN_HOME": str(home), "XDG_CONFIG_HOME": str(home / "config"),
                "OPENWEN_N_CTX": "2048", "OPENWEN_N_THREADS": "2",
                "OPENWEN_REQUIRE_API_KEY": "true"})
    key = _openwen(env, "keys", "create").strip()
    main, other = _free_port(), _free_port()
    log = (home / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "openwen", "serve", "--port", str(main),
         "--ollama-port", str(other)], env=env, stdout=log, stderr=subprocess.STDOUT)
    ports = Ports(f"http://127.0.0.1:{main}", f"http://127.0.0.1:{other}", key)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert process.poll() is None, (home / "serve.log").read_text()[-3000:]
            try:
                if httpx.get(ports.ollama + "/", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "openwen serve did not start"
            time.sleep(0.3)
        yield ports
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _client(ports: Ports, *, key: bool = True) -> ollama.Client:
    headers = {"Authorization": f"Bearer {ports.key}"} if key else {}
    return ollama.Client(host=ports.ollama, timeout=120, headers=headers)


@pytest.mark.slow
def test_the_root_says_ollama_is_running(served: Ports) -> None:
    root = httpx.get(served.ollama + "/")
    assert root.status_code == 200 and root.text == "Ollama is running"
    assert httpx.head(served.ollama + "/").status_code == 200


@pytest.mark.slow
def test_the_ollama_client_chats_on_the_ollama_port(served: Ports) -> None:
    client = _client(served)
    names = [m.model for m in client.list().models]
    assert any(name and name.startswith("smollm2") for name in names), names
    reply = client.chat(model="smollm2", messages=[{"role": "user", "content": "Say hi."}],
                        options={"num_predict": 4, "temperature": 0}, stream=False)
    assert reply.done and reply.done_reason in ("length", "stop")
    assert reply.eval_count is not None and 1 <= reply.eval_count <= 4
    parts = list(client.generate(model="smollm2", prompt="The sky is", stream=True,
                                 options={"num_predict": 3}))
    assert parts[-1].done and "".join(p.response for p in parts).strip()


@pytest.mark.slow
def test_the_same_key_rules_apply(served: Ports) -> None:
    with pytest.raises(ollama.ResponseError) as refused:
        _client(served, key=False).list()
    assert refused.value.status_code == 401
    bad = httpx.get(served.ollama + "/api/tags", headers={"Authorization": "Bearer ow-wrong"})
    assert bad.status_code == 401 and isinstance(bad.json()["error"], str)
    # Ollama serves the OpenAI-compatible API on its port too; so does this one, with a key
    models = httpx.get(served.ollama + "/v1/models",
                       headers={"Authorization": f"Bearer {served.key}"})
    assert models.status_code == 200 and models.json()["data"]


@pytest.mark.slow
def test_the_web_app_stays_on_the_main_port(served: Ports) -> None:
    page = httpx.get(served.main + "/")
    assert page.status_code == 200 and "<html" in page.text.lower()
    for path in ("/login", "/api/conversations", "/docs", "/static/app.js"):
        r = httpx.get(served.ollama + path)
        assert r.status_code == 404, (path, r.text)
        assert "404 page not found" in r.json()["error"]


def test_the_ollama_port_needs_one_worker() -> None:
    result = CliRunner().invoke(cli, ["serve", "--workers", "2", "--ollama-port", "11434"])
    assert result.exit_code == 1
    assert "ollama_port needs a single worker" in result.output
