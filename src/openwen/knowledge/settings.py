"""Limits and switches of the knowledge features.

They come from openwen's :class:`~openwen.config.Settings` when it has the matching field
(``document_max_bytes``, ``memory_auto_extract``), else from the defaults below, so the feature
works before those fields exist.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

MB = 1024 * 1024


@dataclass(frozen=True)
class KnowledgeSettings:
    document_max_bytes: int = 50 * MB  # largest file accepted (checked before reading it)
    zip_max_bytes: int = 200 * MB  # largest total uncompressed size of a DOCX
    zip_max_ratio: int = 100  # largest uncompressed/compressed ratio of a DOCX
    zip_max_entries: int = 5_000
    parse_seconds: float = 120.0  # parsing and chunking one file; past it the file is refused
    chunk_chars: int = 900  # ~200 tokens: all-MiniLM-L6-v2 reads at most 256
    chunk_overlap: int = 150
    embed_batch: int = 32
    whole_document_chars: int = 6_000  # whole-document mode when the scope's text fits
    top_k: int = 5
    candidates: int = 50  # per ranking, before fusion
    fusion: str = "relative"  # "relative" (relative score fusion) or "rrf"
    vector_weight: float = 0.9  # relative score fusion: weight of the vector ranking
    vector_scale: float = 0.3  # cosine below the best vector candidate that scores 0
    cjk_vector_weight: float = 0.25  # vector weight for a CJK query, model reading no CJK
    rrf_k: int = 60
    memory_top_k: int = 5
    memory_min_similarity: float = 0.35
    memory_auto_extract: bool = False  # server-wide default; users may switch it

    @classmethod
    def from_settings(cls, settings: Any | None, **overrides: Any) -> KnowledgeSettings:
        values: dict[str, Any] = {}
        for name in ("document_max_bytes", "memory_auto_extract"):
            value = getattr(settings, name, None) if settings is not None else None
            if value is not None:
                values[name] = value
        return replace(cls(**values), **overrides)
