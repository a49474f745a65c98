"""Vector similarity: brute-force cosine over an in-memory matrix, or pgvector.

Every user's chunk embeddings (and, separately, memory embeddings) are loaded into one float32
matrix, kept in a small LRU cache keyed by the user's change counter in ``knowledge_versions``.
Any change (a document added or removed, a memory edited) bumps that counter in the same
transaction, so the next query, in this process or another instance, reloads. A query is one
matrix-vector product (rows are unit length, so the dot product is the cosine); a collection is a
mask over the rows.

A large matrix (``HALF_ROWS`` rows or more) is kept in float16 as a torch tensor when torch is
installed (it is, with sentence-transformers): half the memory, and torch's half-precision
matrix-vector product reads it about twice as fast as numpy's float32 one, which is what bounds
the time (the product is memory-bound). The best candidates are then re-scored in float32.

On PostgreSQL, when migration ``0100_knowledge`` found pgvector, chunk vectors are also kept in
``knowledge_chunk_vectors`` and ranked by the database (``<=>``, cosine distance) instead.
"""

from __future__ import annotations

import importlib.util
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from openwen.knowledge.embedder import DTYPE

PGVECTOR_TABLE = "knowledge_chunk_vectors"
HALF_ROWS = 20_000
RESCORE = 4  # candidates re-scored in float32, per result asked for


def _torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


@dataclass(frozen=True)
class Matrix:
    """Embeddings of one user: row ``i`` is item ``ids[i]`` of group ``groups[i]``."""

    ids: np.ndarray  # int64
    groups: np.ndarray  # int32 codes into group_names
    group_names: tuple[str, ...]
    vectors: np.ndarray  # (n, d) unit rows: float32, or float16 when ``half`` is set
    half: Any = None  # for large matrices: a torch tensor sharing ``vectors``' float16 memory

    @classmethod
    def build(cls, rows: list[tuple[int, str, bytes]]) -> Matrix:
        """From ``(id, group, embedding blob)`` rows; rows of another width than the most common
        one (an older model) are left out."""
        if not rows:
            return cls(np.zeros(0, np.int64), np.zeros(0, np.int32), (), np.zeros((0, 0), DTYPE))
        widths: dict[int, int] = {}
        for _, _, blob in rows:
            widths[len(blob)] = widths.get(len(blob), 0) + 1
        width = max(widths, key=lambda w: widths[w])
        kept = [r for r in rows if len(r[2]) == width]
        names: dict[str, int] = {}
        groups = np.fromiter((names.setdefault(g, len(names)) for _, g, _ in kept), np.int32,
                             len(kept))
        ids = np.fromiter((i for i, _, _ in kept), np.int64, len(kept))
        vectors = np.frombuffer(b"".join(b for _, _, b in kept), dtype=DTYPE)
        vectors = vectors.reshape(len(kept), width // 4)
        if len(kept) >= HALF_ROWS and _torch_available():
            import torch

            halved = vectors.astype(np.float16)
            return cls(ids, groups, tuple(names), halved, torch.from_numpy(halved))
        return cls(ids, groups, tuple(names), vectors)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dims(self) -> int:
        return int(self.vectors.shape[1])

    def _scores(self, query: np.ndarray) -> np.ndarray:
        if self.half is None:
            return np.asarray(self.vectors @ query)
        import torch

        # only the big product runs in torch; small steps stay in numpy (no thread handoffs)
        product = torch.mv(self.half, torch.from_numpy(query.astype(np.float16)))
        return product.numpy().astype(DTYPE)

    def _exact(self, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
        return np.asarray(self.vectors[rows].astype(DTYPE) @ query)

    def top(self, query: np.ndarray, k: int,
            only_groups: set[str] | None = None) -> list[tuple[int, float]]:
        """The ``k`` most similar items as ``(id, cosine)``, best first."""
        query = np.ascontiguousarray(query, dtype=DTYPE).reshape(-1)
        if not len(self) or k <= 0 or query.shape[0] != self.dims:
            return []
        scores = self._scores(query)
        if only_groups is not None:
            codes = [i for i, name in enumerate(self.group_names) if name in only_groups]
            mask = np.isin(self.groups, np.asarray(codes, dtype=np.int32))
            if not mask.any():
                return []
            scores = np.where(mask, scores, -np.inf)
            k = min(k, int(mask.sum()))
        pool = min(len(scores), k if self.half is None else k * RESCORE)
        best = np.argpartition(-scores, pool - 1)[:pool]
        best = best[np.isfinite(scores[best])]
        if self.half is not None:
            scores = np.full(len(scores), -np.inf, dtype=DTYPE)
            scores[best] = self._exact(best, query)
        best = best[np.argsort(-scores[best], kind="stable")][:k]
        return [(int(self.ids[i]), float(scores[i])) for i in best]


class MatrixCache:
    """An LRU of matrices keyed by ``(kind, user_id, model)``, each tagged with the version it
    was loaded at."""

    def __init__(self, max_entries: int = 8):
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[int, Matrix]] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, version: int, load: Callable[[], Matrix]) -> Matrix:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] == version:
                self._entries.move_to_end(key)
                return entry[1]
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # one loader per key; others wait for its result
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None and entry[0] == version:
                    return entry[1]
            matrix = load()
            with self._lock:
                self._entries[key] = (version, matrix)
                self._entries.move_to_end(key)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
            return matrix

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


# -- pgvector ---------------------------------------------------------------------------------


def pgvector_enabled(session: Session) -> bool:
    """Whether this PostgreSQL database keeps chunk vectors in pgvector."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    return session.execute(text(f"SELECT to_regclass('{PGVECTOR_TABLE}')")).scalar() is not None


def vector_literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{float(x):.7g}" for x in np.asarray(vector).reshape(-1)) + "]"


def pgvector_insert(session: Session, user_id: int, items: list[tuple[int, np.ndarray]]) -> None:
    if items:
        session.execute(
            text(f"INSERT INTO {PGVECTOR_TABLE} (chunk_id, user_id, embedding) "
                 "VALUES (:chunk_id, :user_id, CAST(:embedding AS vector))"),
            [{"chunk_id": cid, "user_id": user_id, "embedding": vector_literal(vec)}
             for cid, vec in items])


def pgvector_rank(session: Session, user_id: int, query: np.ndarray, *, model: str,
                  document_filter: str = "", params: dict[str, Any] | None = None,
                  limit: int = 50) -> list[tuple[int, float]]:
    sql = (
        "SELECT v.chunk_id, 1 - (v.embedding <=> CAST(:query AS vector)) AS score "
        f"FROM {PGVECTOR_TABLE} v JOIN knowledge_chunks c ON c.id = v.chunk_id "
        "JOIN knowledge_documents d ON d.id = c.document_id "
        "WHERE v.user_id = :user_id AND d.embedding_model = :model "
        f"AND vector_dims(v.embedding) = :dims {document_filter} "
        "ORDER BY v.embedding <=> CAST(:query AS vector) LIMIT :limit"
    )
    values = {"user_id": user_id, "query": vector_literal(query), "model": model,
              "dims": int(np.asarray(query).size), "limit": limit, **(params or {})}
    return [(int(r[0]), float(r[1])) for r in session.execute(text(sql), values)]
