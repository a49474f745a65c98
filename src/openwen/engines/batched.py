"""The batched embedded engine: continuous batching and a prefix cache over llama.cpp sequences.

Same behaviour as :class:`~openwen.engines.llamacpp.LlamaCppEngine` (chat templates, stop strings,
grammar, seeds, logprobs, cancellation within one token, context-length errors), plus:

- requests to the model are decoded together, one token per running request per ``llama_decode``
  (:mod:`openwen.engines.batch_scheduler`); a new request's prompt is read in chunks between the
  running requests' tokens, so its first token arrives while the others keep streaming;
- ``kv_slots`` sequences share one live KV cache of ``kv_cells`` cells; a request reuses the
  cached prefix of its prompt (the conversation so far), even when other conversations ran in
  between (:mod:`openwen.engines.kv_prefix`);
- idle conversations leave the live cache for RAM (``kv_ram_mb``) and, when long, for disk
  (``kv_cache_dir``, at most ``kv_cache_dir_mb``; also at shutdown), and are loaded back when they
  resume (:mod:`openwen.engines.kv_store`).

Reproducibility. A seeded request samples with its own sampler chain, so it repeats exactly when
it is evaluated the same way. Batched, it may not be bit-identical to a solo run: llama.cpp's CPU
flash-attention kernel takes different paths by evaluation size (a tiled one from 64 tokens up)
and context length, and some of them round differently depending on where a sequence's cells lie.
(Short sequences decoded together were bit-identical to solo runs; the simple engine's non-flash
path differs just as much between a cold and a cached prompt.) Measured on SmolLM2-135M: the
log-probabilities of the same tokens differ by at most ~0.4 (typically < 0.2), so seeded outputs
agree until a near-tie (top-2 gap ~0.1) flips. ``tests/engines/test_batched.py`` holds this bound.

Rendering, tokenising and building the grammar run in a worker thread before a request joins the
queue, so the step loop only ever evaluates and samples.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from openwen import stage_trace
from openwen.engines.base import Capabilities, ModelInfo
from openwen.engines.batch_native import NativeAdapter, NativeContext, NativeModel
from openwen.engines.batch_scheduler import END, BatchScheduler, Job
from openwen.engines.decoding import (
    BASE_SAMPLING,
    OutputDecoder,
    chat_format,
    merge_sampling,
    needs_bos,
    render_request,
    special_texts,
)
from openwen.engines.grammar import grammar_for
from openwen.engines.inert import tokenize_segments
from openwen.engines.kv_prefix import PrefixCache
from openwen.engines.kv_slots import SlotTable, salt_tag
from openwen.engines.kv_store import KVStore, model_folder
from openwen.engines.logprobs import LogprobReader
from openwen.errors import ContextLengthError, InvalidRequestError
from openwen.formats import ChatFormat, RenderedPrompt
from openwen.messages import StreamEvent
from openwen.requests import ChatRequest

ADMIT_RESERVE = 32  # cells kept free beyond a prompt when admitting it, for its first tokens


class BatchedEngine:
    """Serves one GGUF model on the CPU to many requests at once.

    ``model`` shares weights already loaded (the caller keeps ownership: a base and its
    derivatives load them once); ``adapter`` applies a LoRA adapter to every request, in a
    context, prefix cache and saved-state folder of this engine's own.
    """

    capabilities = Capabilities(tools=True, thinking=True, grammar=True, logprobs=True)

    def __init__(self, model_path: Path, *, name: str, n_ctx: int = 8192, n_threads: int = 2,
                 n_batch: int = 512, n_ubatch: int = 512, max_queue: int = 16,
                 kv_slots: int = 8, kv_cells: int = 0, prefill_chunk: int = 128,
                 kv_ram_mb: int = 1024,
                 kv_cache_dir: Path | None = None, kv_cache_dir_mb: int = 2048,
                 kv_disk_min_tokens: int = 512, model: NativeModel | None = None,
                 adapter: Path | None = None, adaptive_threads: bool = True):
        self.name = name
        self.model_path = Path(model_path)
        self.adapter_path = adapter
        self._owns_model = model is None
        self._model = model or NativeModel(self.model_path)
        self.n_ctx = n_ctx
        cells = max(kv_cells or n_ctx, n_ctx)
        try:
            self._adapter = NativeAdapter(self._model, adapter) if adapter else None
            self._ctx = NativeContext(self._model, n_cells=cells, n_seq=kv_slots,
                                      n_batch=min(n_batch, cells),
                                      n_ubatch=min(n_ubatch, n_batch, cells),
                                      n_threads=n_threads, adapter=self._adapter)
        except BaseException:
            self._close_weights()
            raise
        self.kv_cells = self._ctx.n_cells
        self.kv_slots = kv_slots
        self._bos_text = self._model.token_text(self._model.bos)
        self._special = special_texts(self._model.vocab)
        self.format: ChatFormat = chat_format(
            self._model.metadata, bos_text=self._bos_text,
            eos_text=self._model.token_text(self._model.eos))
        folder = model_folder(kv_cache_dir, self.model_path, adapter) if kv_cache_dir else None
        store = KVStore(ram_bytes=kv_ram_mb * 2**20, folder=folder,
                        disk_bytes=kv_cache_dir_mb * 2**20 if folder else 0,
                        disk_min_tokens=kv_disk_min_tokens)
        table = SlotTable(kv_slots, self.kv_cells, self._ctx)
        self.cache = PrefixCache(table, self._ctx, store)
        self.worker = BatchScheduler(name, self._model, self._ctx, self.cache,
                                     max_queue=max_queue, prefill_chunk=prefill_chunk,
                                     adaptive_threads=adaptive_threads)

    @property
    def progress_tokens(self) -> int:
        """Completion tokens of the request that produced the latest token."""
        return self.worker.progress_tokens

    @property
    def last_cancelled_tokens(self) -> int:
        """Completion tokens the last cancelled request had when it left the batch."""
        return self.worker.last_cancelled_tokens

    @last_cancelled_tokens.setter
    def last_cancelled_tokens(self, value: int) -> None:
        self.worker.last_cancelled_tokens = value

    def models(self) -> list[ModelInfo]:
        details = {"engine": "embedded", "path": str(self.model_path), "batched": True,
                   "kv_slots": self.kv_slots, "kv_cells": self.kv_cells}
        if self.adapter_path is not None:
            details["adapter"] = str(self.adapter_path)
        return [ModelInfo(id=self.name, context_length=self.n_ctx, details=details)]

    def render(self, request: ChatRequest) -> RenderedPrompt:
        return render_request(self.format, request, self._special)

    def tokenize(self, text: str) -> list[int]:
        """Token ids of a rendered prompt: special tokens of the template parsed, those written
        in content kept as plain text (:mod:`openwen.engines.inert`)."""
        add_bos = needs_bos(text, adds_bos=self._model.adds_bos, bos_text=self._bos_text)
        model = self._model
        return tokenize_segments(
            text, lambda piece, first: model.tokenize(piece, add_bos=add_bos and first))

    def count_tokens(self, request: ChatRequest) -> int:
        return len(self.tokenize(self.render(request).text))

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        accepted = time.perf_counter()
        loop = asyncio.get_running_loop()
        out: asyncio.Queue[Any] = asyncio.Queue()
        stage_trace.mark("engine")
        job = await asyncio.to_thread(self._prepare, request, loop, out)
        job.accepted = accepted
        job.stages = stage_trace.current()
        stage_trace.mark("prepared")
        try:
            self.worker.submit(job)
        except BaseException:
            job.chain.close()
            raise
        stage_trace.mark("submitted")
        try:
            while True:
                item = await out.get()
                stage_trace.mark("delivered")
                if item is END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.worker.cancel(job)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.worker.close)
        self._close_weights()

    def _close_weights(self) -> None:
        if getattr(self, "_adapter", None) is not None:
            self._adapter.close()  # type: ignore[union-attr]
            self._adapter = None
        if self._owns_model:
            self._model.close()

    def kv_state(self) -> dict[str, Any]:
        """The cache as the owner thread sees it (for tests, benchmarks and diagnostics)."""

        def snapshot() -> dict[str, Any]:
            table = self.cache.table
            return {
                "free_cells": table.free_cells,
                "used_cells": table.ledger.used,
                "slots": [{"seq": s.seq_id, "tokens": len(s.tokens), "busy": s.busy,
                           "cells_in_llama": self._ctx.seq_pos_max(s.seq_id) + 1}
                          for s in table.slots],
                "loads": self.cache.loads,
                "offloads": self.cache.offloads,
                "saved_states": len(self.cache.store),
                "ram_bytes": self.cache.store.ram_used,
                "steps": self.worker.steps,
            }

        return self.worker.call(snapshot)  # type: ignore[no-any-return]

    # -- runs in a worker thread, before the request joins the batch -----------------------------

    def _prepare(self, request: ChatRequest, loop: asyncio.AbstractEventLoop,
                 out: asyncio.Queue[Any]) -> Job:
        stage_trace.mark("prepare_thread")
        rendered = self.render(request)
        stage_trace.mark("rendered")
        tokens = self.tokenize(rendered.text)
        stage_trace.mark("tokenized")
        n_prompt = len(tokens)
        if n_prompt == 0:
            raise InvalidRequestError("the prompt is empty", param="prompt")
        if n_prompt >= self.n_ctx:
            raise ContextLengthError(n_prompt, self.n_ctx)
        if request.max_tokens is not None and request.max_tokens < 1:
            raise InvalidRequestError("max_tokens must be at least 1", param="max_tokens")
        room = self.n_ctx - n_prompt
        budget = min(request.max_tokens or room, room)
        sampling = merge_sampling(BASE_SAMPLING, self.format.sampling_defaults(rendered.thinking),
                                  request.sampling)
        seed = sampling.seed if sampling.seed is not None else random.getrandbits(31)
        grammar = grammar_for(request)
        pieces = self._model.pieces
        reader = (LogprobReader(self._model.n_vocab, pieces, request.top_logprobs)
                  if request.logprobs else None)
        decoder = OutputDecoder(self.format, request, rendered, piece_bytes=pieces,
                                logprobs=reader)
        chain = self._model.sampler(sampling, grammar, seed)
        return Job(tokens=tokens, budget=budget, reserve=min(budget, ADMIT_RESERVE), chain=chain,
                   decoder=decoder, loop=loop, out=out, tag=salt_tag(request.cache_salt))
