"""A second stage measured offline: rerank the fused top candidates with the embedding model
over passage windows (each window: the passage's heading path + up to two of its lines or
sentences; a candidate's window score is its best window's cosine to the query).

Used by ``bench/rag_eval.py --rerank N`` on the rankings it has; the windows' embeddings go
through the same on-disk cache. Final score of a candidate: ``(1 - beta) * fused + beta *
window``, both min-max normalised over the N candidates.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

SENTENCE = re.compile(r"(?<=[.!?。！？])\s+|\n+")


def windows(passage: str, size: int = 2) -> list[str]:
    """The passage's windows: its heading path (first line when it has one) with each run of
    ``size`` consecutive sentences or lines."""
    head, _, body = passage.partition("\n") if "\n" in passage else ("", "", passage)
    parts = [p.strip() for p in SENTENCE.split(body) if p and p.strip()]
    if not parts:
        return [passage]
    out = []
    for start in range(0, max(1, len(parts) - size + 1)):
        window = " ".join(parts[start:start + size])
        out.append(f"{head}\n{window}" if head else window)
    return out


def _minmax(values: np.ndarray) -> np.ndarray:
    spread = float(values.max() - values.min()) if len(values) else 0.0
    return (values - values.min()) / spread if spread > 0 else np.ones_like(values)


def window_scores(embedder: Any, query: str, candidates: list[int],
                  passages: dict[str, str]) -> np.ndarray:
    """Each candidate's best window cosine to ``query``."""
    from openwen.knowledge.embedder import embed_query

    q = embed_query(embedder, [query])[0]
    spans, texts = [], []
    for cid in candidates:
        ws = windows(passages.get(str(cid), ""))
        spans.append((len(texts), len(texts) + len(ws)))
        texts.extend(ws)
    vectors = embedder.embed(texts)
    sims = vectors @ q
    return np.array([float(sims[a:b].max()) for a, b in spans], dtype=np.float32)


def rerank(order: list[int], fused: list[float], scores: np.ndarray, beta: float) -> list[int]:
    n = len(scores)
    combined = (1 - beta) * _minmax(np.asarray(fused[:n], dtype=np.float32)) \
        + beta * _minmax(scores)
    top = [order[i] for i in np.argsort(-combined, kind="stable")]
    return top + order[n:]
