"""An on-disk cache of embeddings for the benchmarks, keyed by model name + text hash.

Evaluation corpora are embedded again on every run otherwise (minutes on two shared cores);
with the cache a second run embeds only what changed. The cache is a SQLite file
(``~/.cache/openwen-bench/embeddings.sqlite`` by default): one row per (model, sha256 of the
text), the float32 vector as a blob. Only the benchmarks use it, never openwen itself.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from openwen.knowledge.embedder import DTYPE, TextEmbedder, as_matrix

DEFAULT_PATH = Path.home() / ".cache" / "openwen-bench" / "embeddings.sqlite"


class CachedEmbedder:
    """``inner`` behind a persistent cache; same ``name``, same vectors."""

    def __init__(self, inner: TextEmbedder, path: Path = DEFAULT_PATH):
        self.inner = inner
        self.name = inner.name
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (model TEXT, digest TEXT, "
                         "vector BLOB, PRIMARY KEY (model, digest))")
        self.hits = 0
        self.misses = 0

    def __getattr__(self, name: str) -> object:  # reads_cjk and the like: the inner model's
        return getattr(self.inner, name)

    @staticmethod
    def _digest(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def embed(self, texts: list[str]) -> np.ndarray:
        return self._cached(texts, self.inner.embed, "")

    def embed_query(self, texts: list[str]) -> np.ndarray:
        method = getattr(self.inner, "embed_query", None)
        if not callable(method):
            return self.embed(texts)
        return self._cached(texts, method, "query\0")

    def _cached(self, texts: list[str], compute: Callable[[list[str]], np.ndarray],
                tag: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=DTYPE)
        digests = [self._digest(tag + t) for t in texts]
        with self._lock:
            found: dict[str, np.ndarray] = {}
            for digest in set(digests):
                row = self._db.execute("SELECT vector FROM vectors WHERE model = ? AND "
                                       "digest = ?", (self.name, digest)).fetchone()
                if row is not None:
                    found[digest] = np.frombuffer(row[0], dtype=DTYPE)
        pairs = zip(texts, digests, strict=True)
        missing = list(dict.fromkeys(t for t, d in pairs if d not in found))
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        if missing:
            computed = compute(missing)
            with self._lock:
                for text, vector in zip(missing, computed, strict=True):
                    digest = self._digest(tag + text)
                    found[digest] = np.asarray(vector, dtype=DTYPE)
                    self._db.execute("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                                     (self.name, digest, found[digest].tobytes()))
                self._db.commit()
        return as_matrix(np.stack([found[d] for d in digests]))

    def close(self) -> None:
        with self._lock:
            self._db.close()
