"""The embedded engine: a GGUF model run by llama.cpp through llama-cpp-python.

One :class:`~openwen.engines.scheduler.ModelWorker` thread owns the ``Llama`` instance. A request's
prompt is rendered with the model's own chat template (``formats``), tokenised, checked against the
context size, then decoded token by token; each token is detokenised UTF-8-safely, checked against
stop strings, and parsed into reasoning / text / tool-call events. Cancellation is checked after
every token. (:mod:`openwen.engines.batched` is the batching, prefix-caching alternative.)
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from openwen.engines.base import Capabilities, ModelInfo
from openwen.engines.decoding import (
    BASE_SAMPLING,
    OutputDecoder,
    TokenPieces,
    chat_format,
    check_gguf,
    merge_sampling,
    needs_bos,
    render_request,
    special_texts,
)
from openwen.engines.grammar import grammar_for
from openwen.engines.inert import tokenize_segments
from openwen.engines.llama_buffers import llama_cpp_module
from openwen.engines.logprobs import LogprobReader
from openwen.engines.scheduler import Emit, ModelWorker
from openwen.errors import ContextLengthError, InvalidRequestError, ModelFileError
from openwen.formats import ChatFormat, RenderedPrompt
from openwen.messages import Done, FinishReason, StreamEvent, Timings, Usage
from openwen.requests import ChatRequest, Sampling

log = logging.getLogger(__name__)

class LlamaCppEngine:
    """Serves one GGUF model on the CPU."""

    capabilities = Capabilities(tools=True, thinking=True, grammar=True, logprobs=True)

    def __init__(self, model_path: Path, *, name: str, n_ctx: int = 8192, n_threads: int = 2,
                 n_batch: int = 512, max_queue: int = 16, adapter: Path | None = None):
        self.name = name
        self.model_path = Path(model_path)
        self.adapter_path = adapter
        self.worker = ModelWorker(name, max_queue=max_queue)
        self._llm: Any = self.worker.call(
            lambda: _load_llama(self.model_path, n_ctx=n_ctx, n_threads=n_threads,
                                n_batch=n_batch, adapter=adapter)
        )
        self.n_ctx: int = self._llm.n_ctx()
        model = self._llm._model
        self._bos_text = _token_text(model, self._llm.token_bos())
        self.format: ChatFormat = chat_format(
            self._llm.metadata, bos_text=self._bos_text,
            eos_text=_token_text(model, self._llm.token_eos()))
        self._pieces = TokenPieces(self._llm._model.vocab)
        self._special = special_texts(self._llm._model.vocab)
        # decoded tokens of the running request, and of the last cancelled one when it stopped
        self.progress_tokens = 0
        self.last_cancelled_tokens = 0
        self._cache_salt: str | None = None  # salt of the prompt now in the KV cache

    def models(self) -> list[ModelInfo]:
        return [ModelInfo(id=self.name, context_length=self.n_ctx,
                          details={"engine": "embedded", "path": str(self.model_path)})]

    def render(self, request: ChatRequest) -> RenderedPrompt:
        return render_request(self.format, request, self._special)

    def tokenize(self, text: str) -> list[int]:
        """Token ids of a rendered prompt: special tokens of the template parsed, those written
        in content kept as plain text (:mod:`openwen.engines.inert`)."""
        add_bos = needs_bos(text, adds_bos=self._llm._model.add_bos_token(),
                            bos_text=self._bos_text)
        llm = self._llm
        return tokenize_segments(text, lambda piece, first: list(
            llm.tokenize(piece.encode("utf-8"), add_bos=add_bos and first, special=True)))

    def count_tokens(self, request: ChatRequest) -> int:
        return len(self.tokenize(self.render(request).text))

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        accepted = time.perf_counter()

        def job(emit: Emit, cancel: threading.Event) -> None:
            self._generate(request, emit, cancel, accepted)

        return self.worker.stream(job)

    async def aclose(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None:
            self.worker.call(llm.close)
        self.worker.close()

    # -- runs on the worker thread ------------------------------------------------------------

    def _generate(self, request: ChatRequest, emit: Emit, cancel: threading.Event,
                  accepted: float) -> None:
        rendered = self.render(request)
        tokens = self.tokenize(rendered.text)
        n_prompt = len(tokens)
        if n_prompt >= self.n_ctx:
            raise ContextLengthError(n_prompt, self.n_ctx)
        room = self.n_ctx - n_prompt
        if request.max_tokens is not None and request.max_tokens < 1:
            raise InvalidRequestError("max_tokens must be at least 1", param="max_tokens")
        budget = min(request.max_tokens or room, room)
        sampling = merge_sampling(BASE_SAMPLING, self.format.sampling_defaults(rendered.thinking),
                                  request.sampling)
        self._llm.set_seed(sampling.seed if sampling.seed is not None else random.getrandbits(31))
        decoder = self._decoder(request, rendered)
        if request.cache_salt != self._cache_salt:  # another salt's prefix is never reused
            self._llm.reset()
            self._cache_salt = request.cache_salt
        cached = _common_prefix(self._llm, tokens)
        start = time.perf_counter()
        first: float | None = None
        finish: FinishReason = "length"
        n_out = 0
        for token in self._llm.generate(tokens, reset=True, grammar=grammar_for(request),
                                        **_llama_sampling(sampling)):
            if cancel.is_set():
                self.last_cancelled_tokens = n_out
                return
            if first is None:
                first = time.perf_counter()
            if _is_eog(self._llm, token):
                finish = "stop"
                break
            n_out += 1
            self.progress_tokens = n_out
            logits = self._llm._ctx.get_logits_ith(-1) if decoder.logprobs else None
            for event in decoder.add(token, logits):
                emit(event)
            if decoder.stopped:
                finish = "stop"
                break
            if n_out >= budget:
                break
        for event in decoder.finish():
            emit(event)
        if finish == "stop" and decoder.tool_call_count:
            finish = "tool_calls"
        end = time.perf_counter()
        first = first or end
        emit(Done(
            finish_reason=finish,
            usage=Usage(prompt_tokens=n_prompt, completion_tokens=n_out, cached_tokens=cached),
            timings=Timings(queue_ms=(start - accepted) * 1000, prompt_ms=(first - start) * 1000,
                            decode_ms=(end - first) * 1000, ttft_ms=(first - accepted) * 1000),
            stop_sequence=decoder.stop_sequence if finish == "stop" else None,
        ))

    def _decoder(self, request: ChatRequest, rendered: RenderedPrompt) -> OutputDecoder:
        reader = (LogprobReader(self._llm.n_vocab(), self._pieces, request.top_logprobs)
                  if request.logprobs else None)
        return OutputDecoder(self.format, request, rendered, piece_bytes=self._pieces,
                             logprobs=reader)


def _common_prefix(llm: Any, tokens: list[int]) -> int:
    """Prompt tokens already in the KV cache (llama-cpp-python reuses the longest common prefix)."""
    n = 0
    for cached, new in zip(llm._input_ids[: llm.n_tokens], tokens, strict=False):
        if cached != new:
            break
        n += 1
    return min(n, max(len(tokens) - 1, 0))


def _is_eog(llm: Any, token: int) -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_vocab_is_eog(llm._model.vocab, token))


def _llama_sampling(s: Sampling) -> dict[str, Any]:
    return {
        "temp": s.temperature, "top_p": s.top_p, "top_k": s.top_k, "min_p": s.min_p,
        "presence_penalty": s.presence_penalty, "frequency_penalty": s.frequency_penalty,
        "repeat_penalty": s.repeat_penalty,
    }


def _token_text(model: Any, token: int) -> str:
    return model.token_get_text(token) if token >= 0 else ""


def _load_llama(path: Path, *, n_ctx: int, n_threads: int, n_batch: int,
                adapter: Path | None = None) -> Any:
    Llama = llama_cpp_module().Llama

    check_gguf(path)
    try:
        return Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads,
                     n_threads_batch=n_threads, n_batch=min(n_batch, n_ctx), verbose=False,
                     lora_path=str(adapter) if adapter else None)
    except (ValueError, RuntimeError) as exc:
        raise ModelFileError(f"llama.cpp could not load {path}: {exc}") from exc
