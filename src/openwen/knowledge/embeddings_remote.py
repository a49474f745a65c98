"""Embeddings from an OpenAI-compatible upstream (vLLM, another openwen...): ``POST
{base_url}/embeddings``. Lets an instance run documents and memory with no local model and no
torch (the slim gateway role). Called only on its slot's worker thread, like every embedder."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np

from openwen.config import Settings, UpstreamConfig
from openwen.engines.upstream_http import UpstreamClient
from openwen.errors import UpstreamError

BATCH = 64


def upstream_for_embeddings(settings: Settings, name: str) -> UpstreamConfig | None:
    for config in settings.engines:
        if name in config.embedding_models:
            return config
    return None


class RemoteEmbedder:
    def __init__(self, config: UpstreamConfig, name: str):
        self.name = name
        self.config = config
        headers = {"User-Agent": "openwen"}
        if config.api_key is not None:
            headers["Authorization"] = f"Bearer {config.api_key.get_secret_value()}"
        self._client = UpstreamClient(
            headers=headers, timeout=httpx.Timeout(config.timeout, connect=config.connect_timeout))
        self._url = config.base_url.rstrip("/") + "/embeddings"

    def embed(self, texts: list[str]) -> Any:
        from openwen.knowledge.embeddings import Embeddings

        rows: list[list[float]] = []
        tokens = 0
        for start in range(0, len(texts), BATCH):
            data = self._post(texts[start:start + BATCH])
            items = sorted(data.get("data") or [], key=lambda d: d.get("index", 0))
            rows.extend(item["embedding"] for item in items)
            tokens += int((data.get("usage") or {}).get("prompt_tokens") or 0)
        if len(rows) != len(texts):
            raise UpstreamError(f"the upstream {self.config.name!r} returned {len(rows)} "
                                f"embeddings for {len(texts)} inputs")
        vectors = np.asarray(rows, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return Embeddings(vectors / np.maximum(norms, 1e-12), tokens)

    def _post(self, texts: list[str]) -> dict[str, Any]:
        where = f"the upstream {self.config.name!r}"
        try:
            response = self._client.post(self._url, json={"model": self.name, "input": texts})
        except httpx.HTTPError as exc:
            raise UpstreamError(f"cannot get embeddings from {where}: "
                                f"{type(exc).__name__}") from exc
        if response.status_code >= 400:
            raise UpstreamError(f"{where} refused the embeddings request "
                                f"({response.status_code}): {response.text[:200]}")
        try:
            data = response.json()
        except ValueError as exc:
            raise UpstreamError(f"{where} sent no JSON for embeddings") from exc
        if not isinstance(data, dict):
            raise UpstreamError(f"{where} sent a malformed embeddings answer")
        return data

    def close(self) -> None:
        self._client.close()
