"""Documents (RAG) and long-term memory, fully local.

- :class:`KnowledgeBase` (``base.py``): add files, search, build the late-prompt context;
- parsing (``parse.py``, ``parse_office.py``), chunking (``chunking.py``), the embedder seam
  (``embedder.py`` over ``embeddings.py``, ``embeddings_e5.py``), full-text and vector rankings
  fused by relative scores (``fulltext.py``, ``vectors.py``, ``retrieval.py``), memory
  (``memory.py``, ``extract.py``), grounded answers with citations (``context.py``, ``answer.py``).
"""

from openwen.knowledge.base import KnowledgeBase
from openwen.knowledge.context import Citation, KnowledgeContext
from openwen.knowledge.embedder import LocalEmbedder, ServiceEmbedder, TextEmbedder
from openwen.knowledge.memory import detect_remember
from openwen.knowledge.records import (
    AddResult,
    CollectionRecord,
    DocumentRecord,
    MemoryRecord,
    Passage,
    Scope,
)
from openwen.knowledge.settings import KnowledgeSettings

__all__ = [
    "AddResult",
    "Citation",
    "CollectionRecord",
    "DocumentRecord",
    "KnowledgeBase",
    "KnowledgeContext",
    "KnowledgeSettings",
    "LocalEmbedder",
    "MemoryRecord",
    "Passage",
    "Scope",
    "ServiceEmbedder",
    "TextEmbedder",
    "detect_remember",
]
