"""Several upstreams (``[[engines]]``) behind a gateway instance with no local model: merged
model list, health checks (503 + Retry-After while one is down, back when it recovers),
embeddings from an upstream, and no torch or llama.cpp imported in that role."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from serverkit import RunningServer, running_server, server_settings

from openwen.config import UpstreamConfig, load_settings

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
WAIT = 30.0  # a safety net


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def standin_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def gateway(api: RunningServer, standin_port: int, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[RunningServer]:
    engines = (
        UpstreamConfig(name="main", base_url=api.v1, models=("smollm2",),
                       embedding_models=("all-minilm-l6-v2",)),
        UpstreamConfig(name="spare", base_url=f"http://127.0.0.1:{standin_port}/v1",
                       models=("bench",), connect_timeout=1, retries=0),
    )
    settings = server_settings(Path(tmp_path_factory.mktemp("gateway")), engines=engines,
                               local_models=False, upstream_check_interval=0.5,
                               embedding_model="all-minilm-l6-v2")
    with running_server(settings) as server:
        yield server


def models(server: RunningServer) -> dict[str, dict[str, object]]:
    return {m["id"]: m for m in httpx.get(f"{server.v1}/models").json()["data"]}


def test_models_of_every_upstream_are_merged_and_marked(gateway: RunningServer) -> None:
    listed = models(gateway)
    assert listed["smollm2"]["available"] is True
    assert listed["bench"]["available"] is False  # nothing listens there yet
    assert listed["all-minilm-l6-v2"]["type"] == "embedding"
    assert not any(str(m).endswith(".gguf") for m in listed)


def test_a_model_of_a_down_upstream_is_503_with_retry_after(gateway: RunningServer) -> None:
    r = httpx.post(f"{gateway.v1}/chat/completions", timeout=30,
                   json={"model": "bench", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 503
    assert int(r.headers["retry-after"]) >= 1
    error = r.json()["error"]
    assert "unavailable" in error["message"] and "spare" in error["message"]
    client = gateway_client(gateway)
    answer = client.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "Say hi"}], max_tokens=5)
    assert answer.choices[0].message.content


def gateway_client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.v1, api_key="unused", max_retries=0)


def test_embeddings_come_from_the_upstream(api: RunningServer, gateway: RunningServer) -> None:
    relayed = gateway_client(gateway).embeddings.create(model="all-minilm-l6-v2",
                                                        input=["a cat", "a dog"])
    direct = openai.OpenAI(base_url=api.v1, api_key="unused").embeddings.create(
        model="all-minilm-l6-v2", input=["a cat", "a dog"])
    assert len(relayed.data) == 2
    for mine, theirs in zip(relayed.data, direct.data, strict=True):
        assert mine.embedding == pytest.approx(theirs.embedding, abs=1e-5)


def test_an_upstream_that_comes_up_is_used(gateway: RunningServer, standin_port: int) -> None:
    standin = subprocess.Popen([sys.executable, str(ROOT / "bench" / "gateway.py"),
                                "--upstream", str(standin_port), "5"])
    try:
        deadline = time.monotonic() + WAIT
        while not models(gateway)["bench"]["available"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert models(gateway)["bench"]["available"] is True
        stream = gateway_client(gateway).chat.completions.create(
            model="bench", messages=[{"role": "user", "content": "go"}], stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == "tok" * 5
    finally:
        standin.kill()
        standin.wait()
    deadline = time.monotonic() + WAIT
    while models(gateway)["bench"]["available"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert models(gateway)["bench"]["available"] is False


def test_engines_setting_from_toml_and_environment(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[[engines]]\nname = "gpu1"\nbase_url = "http://gpu1:8000/v1"\n'
                      'models = ["Qwen/Qwen3-8B"]\napi_key = "secret"\n')
    settings = load_settings({"OPENWEN_CONFIG": str(config)}).settings
    assert settings.engines[0].models == ("Qwen/Qwen3-8B",)
    assert "secret" not in repr(settings.engines)
    env = {"OPENWEN_CONFIG": str(config),
           "OPENWEN_ENGINES": json.dumps([{"name": "b", "base_url": "http://b/v1"}])}
    assert load_settings(env).settings.engines[0].name == "b"  # environment beats the file
    with pytest.raises(Exception, match="engines"):
        load_settings({"OPENWEN_CONFIG": str(config), "OPENWEN_ENGINES": '[{"base_url": 1}]'})


SLIM_CHECK = """
import sys, asyncio
from fastapi.testclient import TestClient
from openwen.config import load_settings
from openwen.server.application import create_app
app = create_app(load_settings().settings, preload=True)
with TestClient(app, base_url="http://127.0.0.1") as client:  # a loopback Host
    assert client.get("/health").status_code == 200
    assert client.get("/v1/models").status_code == 200
    assert client.get("/api/session").status_code == 200
heavy = sorted(m for m in ("torch", "sentence_transformers", "transformers", "llama_cpp")
               if m in sys.modules)
print("HEAVY", heavy)
"""


def test_the_gateway_role_imports_no_torch_and_no_llama_cpp(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENWEN_")}
    env.update({"OPENWEN_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
                "OPENWEN_LOCAL_MODELS": "false", "OPENWEN_EMBEDDING_MODEL": "e",
                "OPENWEN_ENGINES": json.dumps([{"base_url": "http://127.0.0.1:9/v1",
                                                "models": ["m"], "embedding_models": ["e"],
                                                "connect_timeout": 0.5, "retries": 0}])})
    out = subprocess.run([sys.executable, "-c", SLIM_CHECK], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "HEAVY []" in out.stdout, out.stdout
