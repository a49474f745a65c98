"""``openwen serve --ollama-port``: a real server process with a second listener, driven by the
official ``ollama`` client. The Ollama port answers as an Ollama server does at its root, serves
the Ollama and ``/v1`` routes under the same API-key rules as the main port, and nothing of the
web app."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import ollama
import pytest
from typer.testing import CliRunner

from openwen.cli.main import app as cli
from served import STARTUP_TIMEOUT, environment, free_port, run_cli, serve


@dataclass
class Ports:
    main: str
    ollama: str
    key: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ports]:
    home = tmp_path_factory.mktemp("ollama-port")
    key = run_cli(environment(home, {}), "keys", "create").strip()  # needed to start
    other = free_port()
    running = serve(home, "--ollama-port", str(other), require_api_key="true")
    server = next(running)  # the main port answers /health
    try:
        ports = Ports(server.url, f"http://127.0.0.1:{other}", key)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:  # the second listener starts beside the first
            try:
                if httpx.get(ports.ollama + "/", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.3)
        yield ports
    finally:
        running.close()


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
