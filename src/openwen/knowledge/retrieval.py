"""Hybrid retrieval over a user's chunks: a full-text ranking and a vector ranking, fused.

Two fusions are available (``KnowledgeSettings.fusion``):

- ``"relative"`` (default): relative score fusion, ``0.9 * vector + 0.1 * full-text``
  (``vector_weight``), where a full-text score is min-max normalised over its candidates and a
  vector score is measured from the best one on a fixed cosine scale, ``1 - (best - cosine) /
  0.3`` (``vector_scale``; min-max over 50 candidates made a 0.04 cosine lead look like
  nothing whenever the candidates' spread was wide);
- ``"rrf"``: reciprocal rank fusion, ``sum(1 / (k + rank))`` over the rankings an item is in
  (``rrf_k``, 60).

A query mostly in Chinese, Japanese or Korean is fused with ``cjk_vector_weight`` (0.25) for the
vectors when the embedding model reads none of them (all-MiniLM-L6-v2): its vectors for such text
are mostly noise, but still break ties among full-text's candidates.

Chosen on bench/rag_eval.py's tuning part (232 questions over prose, notes, technical docs and
Chinese notes; see bench/README.md): with these settings hybrid recall@1 and recall@5 are at
least those of full-text alone and vectors alone in every (corpus, kind) group of the held-out
part; RRF stays below vectors alone on paraphrased questions (it counts only ranks, and
full-text OR-queries always return candidates).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from openwen.errors import InvalidRequestError
from openwen.knowledge.documents import DocumentStore, read_version
from openwen.knowledge.embedder import TextEmbedder, embed_query, reads_cjk
from openwen.knowledge.fulltext import CJK_RUN, rank_chunks
from openwen.knowledge.records import ALL, Passage, Scope, SearchMode
from openwen.knowledge.settings import KnowledgeSettings
from openwen.knowledge.vectors import Matrix, MatrixCache, pgvector_enabled, pgvector_rank

_FULLTEXT_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="knowledge-fulltext")
RRF_K = 60
MODES = ("hybrid", "fulltext", "vector")
MAX_LIMIT = 100
Fused = list[tuple[int, float, dict[str, int]]]  # (id, fused score, {ranking: rank})


def _ranks(rankings: dict[str, list[tuple[int, float]]]) -> dict[int, dict[str, int]]:
    ranks: dict[int, dict[str, int]] = {}
    for name, ranking in rankings.items():
        for rank, (item, _) in enumerate(ranking, 1):
            ranks.setdefault(item, {})[name] = rank
    return ranks


def _ordered(scores: dict[int, float], ranks: dict[int, dict[str, int]]) -> Fused:
    """Best first; ties: the item ranked higher by any ranking first, then the lower id."""
    order = sorted(scores, key=lambda i: (-scores[i], min(ranks[i].values()), i))
    return [(i, scores[i], ranks[i]) for i in order]


def fuse_rrf(rankings: dict[str, list[tuple[int, float]]], k: int = RRF_K) -> Fused:
    """Reciprocal rank fusion."""
    ranks = _ranks(rankings)
    scores = {i: sum(1.0 / (k + r) for r in by.values()) for i, by in ranks.items()}
    return _ordered(scores, ranks)


def fuse_relative(rankings: dict[str, list[tuple[int, float]]], weights: dict[str, float],
                  *, scales: dict[str, float] | None = None) -> Fused:
    """Relative score fusion: per ranking, scores normalised to [0, 1] and weighted, then
    summed. A ranking with a scale in ``scales`` scores ``1 - (best - score) / scale`` (at
    least 0); the others are min-max normalised (a lone candidate scores 1)."""
    scores: dict[int, float] = {}
    for name, ranking in rankings.items():
        if not ranking:
            continue
        values = [s for _, s in ranking]
        low, high = min(values), max(values)
        scale = (scales or {}).get(name)
        for item, score in ranking:
            if scale:
                share = max(0.0, 1.0 - (high - score) / scale)
            else:
                share = (score - low) / (high - low) if high > low else 1.0
            scores[item] = scores.get(item, 0.0) + weights.get(name, 0.0) * share
    return _ordered(scores, _ranks(rankings))


def cjk_share(query: str) -> float:
    """The share of the query's letters and digits that are Chinese, Japanese or Korean."""
    letters = [c for c in query if c.isalnum()]
    if not letters:
        return 0.0
    return sum(1 for c in letters if CJK_RUN.match(c)) / len(letters)


# Fusion chosen per embedding model where the defaults (tuned on all-MiniLM-L6-v2) do not fit:
# multilingual-e5-small's cosines crowd into a narrow band (0.75-0.9), so on a fixed scale a
# real lead looks small; with min-max and vectors almost alone it is never below vectors alone
# in 14 of the 16 groups of rag_eval (bench/README.md).
MODEL_FUSION: dict[str, dict[str, Any]] = {
    "multilingual-e5-small": {"vector_weight": 0.98, "vector_scale": 0.0},
}


def for_model(settings: KnowledgeSettings, model: str) -> KnowledgeSettings:
    """``settings`` with the fusion chosen for the embedding model ``model``, if any."""
    overrides = MODEL_FUSION.get(model.lower())
    return replace(settings, **overrides) if overrides else settings


def fusion_weights(settings: KnowledgeSettings, *, query: str = "",
                   reads_cjk: bool = True) -> dict[str, float]:
    """The weight of each ranking for this query: ``vector_weight`` and its complement, or
    ``cjk_vector_weight`` for a mostly-CJK query when the embedding model reads no CJK."""
    vector = settings.vector_weight
    if not reads_cjk and cjk_share(query) >= 0.5:
        vector = settings.cjk_vector_weight
    return {"vector": vector, "fulltext": 1.0 - vector}


def fuse(rankings: dict[str, list[tuple[int, float]]], settings: KnowledgeSettings, *,
         query: str = "", reads_cjk: bool = True) -> Fused:
    if settings.fusion == "rrf":
        return fuse_rrf(rankings, settings.rrf_k)
    return fuse_relative(rankings, fusion_weights(settings, query=query, reads_cjk=reads_cjk),
                         scales={"vector": settings.vector_scale})


def load_chunk_matrix(s: Session, user_id: int, model: str) -> Matrix:
    rows = s.execute(text(
        "SELECT c.id, c.document_id, c.embedding FROM knowledge_chunks c "
        "JOIN knowledge_documents d ON d.id = c.document_id "
        "WHERE c.user_id = :user_id AND d.embedding_model = :model ORDER BY c.id"),
        {"user_id": user_id, "model": model})
    return Matrix.build([(int(r[0]), str(r[1]), bytes(r[2])) for r in rows])


class Retriever:
    def __init__(self, store: DocumentStore, embedder: TextEmbedder, cache: MatrixCache,
                 settings: KnowledgeSettings):
        self.store = store
        self.embedder = embedder
        self.cache = cache
        self.settings = settings

    def search(self, user_id: int, query: str, scope: Scope = ALL, *, limit: int = 5,
               mode: SearchMode = "hybrid") -> list[Passage]:
        """The ``limit`` best passages for ``query`` in ``scope``. Blocking (embeds the query
        and reads the database): call it from a worker thread."""
        if mode not in MODES:
            raise InvalidRequestError(f"mode is one of {', '.join(MODES)}", param="mode")
        if not isinstance(query, str) or not query.strip():
            raise InvalidRequestError("the query is empty", param="query")
        limit = max(1, min(int(limit), MAX_LIMIT))
        depth = max(self.settings.candidates, limit)
        # the full-text ranking runs beside the query's embedding and the vector ranking
        fulltext = None if mode == "vector" else \
            _FULLTEXT_POOL.submit(self._fulltext, user_id, query, scope, depth)
        vector = embed_query(self.embedder, [query])[0] if mode != "fulltext" else None
        with self.store.db.read() as s:
            sql, params, documents = self.store.scope_filter(s, user_id, scope)
            if documents is not None and not documents:
                return []
            rankings: dict[str, list[tuple[int, float]]] = {}
            if fulltext is not None:
                rankings["fulltext"] = []
            if vector is not None:
                rankings["vector"] = self._vector(s, user_id, vector, sql, params, documents,
                                                  depth)
            if fulltext is not None:
                rankings["fulltext"] = fulltext.result()
            return self._passages(s, user_id, rankings, mode, limit, query)

    def _fulltext(self, user_id: int, query: str, scope: Scope,
                  depth: int) -> list[tuple[int, float]]:
        with self.store.db.read() as s:
            sql, params, documents = self.store.scope_filter(s, user_id, scope)
            if documents is not None and not documents:
                return []
            return rank_chunks(s, user_id, query, document_filter=sql, params=params,
                               limit=depth)

    def _vector(self, s: Session, user_id: int, vector: np.ndarray, sql: str,
                params: dict[str, Any], documents: set[str] | None,
                depth: int) -> list[tuple[int, float]]:
        model = self.embedder.name
        if pgvector_enabled(s):
            return pgvector_rank(s, user_id, vector, model=model, document_filter=sql,
                                 params=params, limit=depth)
        version = read_version(s, user_id, "chunks")
        matrix = self.cache.get(("chunks", user_id, model), version,
                                lambda: load_chunk_matrix(s, user_id, model))
        return matrix.top(vector, depth, documents)

    def _passages(self, s: Session, user_id: int,
                  rankings: dict[str, list[tuple[int, float]]], mode: SearchMode,
                  limit: int, query: str) -> list[Passage]:
        if mode == "hybrid":
            picked = fuse(rankings, for_model(self.settings, self.embedder.name), query=query,
                          reads_cjk=reads_cjk(self.embedder))[:limit]
        else:
            ranking = rankings[mode]
            picked = [(i, score, {mode: n}) for n, (i, score) in enumerate(ranking[:limit], 1)]
        found = self.store.passages(s, user_id, [i for i, _, _ in picked])
        return [replace(found[i], score=score, ranks=ranks) for i, score, ranks in picked
                if i in found]
