"""A thin layer over llama-cpp-python's low-level API for the batched engine.

:class:`NativeModel` is the loaded GGUF (vocabulary, tokenizer, metadata); it is read-only after
loading, so tokenising and building samplers may happen on any thread. :class:`NativeContext` is one
llama.cpp context with a unified KV cache shared by ``n_seq_max`` sequences, plus one reusable
``llama_batch``; every call on it must come from the engine's owner thread.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from openwen.engines.batch_sampling import JobSampler, StepLogits
from openwen.engines.decoding import TokenPieces, check_gguf
from openwen.engines.llama_buffers import llama_cpp_module
from openwen.errors import EngineError, ModelFileError
from openwen.requests import Sampling

PENALTY_LAST_N = 64  # llama-cpp-python's default window for repetition penalties


def _llama() -> Any:
    from llama_cpp._logger import set_verbose

    llama_cpp = llama_cpp_module()
    set_verbose(False)
    return llama_cpp


class NativeModel:
    """A loaded GGUF model: vocabulary, tokenizer, metadata, sampler factory."""

    def __init__(self, path: Path):
        from llama_cpp._internals import LlamaModel

        llama = _llama()
        check_gguf(path)
        llama.llama_backend_init()
        try:
            params = llama.llama_model_default_params()
            self._model = LlamaModel(path_model=str(path), params=params, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise ModelFileError(f"llama.cpp could not load {path}: {exc}") from exc
        self.model = self._model.model
        self.vocab = self._model.vocab
        self.n_vocab: int = llama.llama_vocab_n_tokens(self.vocab)
        self.n_ctx_train: int = llama.llama_model_n_ctx_train(self.model)
        self.metadata: dict[str, str] = self._model.metadata()
        self.pieces = TokenPieces(self.vocab)
        self._is_eog = llama.llama_vocab_is_eog
        self._tokenize = llama.llama_tokenize
        self._token_t = llama.llama_token

    def token_text(self, token: int) -> str:
        return self._model.token_get_text(token) if token >= 0 else ""

    @property
    def bos(self) -> int:
        return int(self._model.token_bos())

    @property
    def eos(self) -> int:
        return int(self._model.token_eos())

    @property
    def adds_bos(self) -> bool:
        return bool(self._model.add_bos_token())

    def is_eog(self, token: int) -> bool:
        return bool(self._is_eog(self.vocab, token))

    def tokenize(self, text: str, *, add_bos: bool) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 8
        buf = (self._token_t * capacity)()
        n = self._tokenize(self.vocab, data, len(data), buf, capacity, add_bos, True)
        if n < 0:
            capacity = -n
            buf = (self._token_t * capacity)()
            n = self._tokenize(self.vocab, data, len(data), buf, capacity, add_bos, True)
            if n < 0:
                raise EngineError(f"llama.cpp could not tokenize a {len(data)}-byte prompt")
        return buf[:n]

    def sampler(self, sampling: Sampling, grammar: Any | None, seed: int) -> JobSampler:
        """A request's sampler: llama-cpp-python's chain order (the simple engine's, token for
        token), the grammar kept apart so it can check the sampled token first
        (:mod:`openwen.engines.batch_sampling`)."""
        from llama_cpp._internals import LlamaSampler

        s = sampling
        chain = LlamaSampler()
        repeat, freq, present = (s.repeat_penalty or 1.0, s.frequency_penalty or 0.0,
                                 s.presence_penalty or 0.0)
        chain.add_penalties(self.n_vocab, PENALTY_LAST_N, repeat, freq, present)
        temp = s.temperature if s.temperature is not None else 0.8
        top_k = s.top_k if s.top_k is not None else 40
        if temp < 0.0:
            chain.add_dist(seed)
        elif temp == 0.0:
            chain.add_greedy()
        else:
            chain.add_top_k(top_k)
            chain.add_typical(1.0, 1)
            chain.add_top_p(s.top_p if s.top_p is not None else 0.95, 1)
            chain.add_min_p(s.min_p if s.min_p is not None else 0.05, 1)
            chain.add_temp(temp)
            chain.add_dist(seed)
        rules = None
        if grammar is not None:
            llama = _llama()
            rules = llama.llama_sampler_init_grammar(
                self.vocab, grammar._grammar.encode("utf-8"), grammar._root.encode("utf-8"))
            if not rules:
                chain.close()
                raise EngineError("llama.cpp could not build the grammar for this request")
        neutral = repeat == 1.0 and freq == 0.0 and present == 0.0
        return JobSampler(chain, grammar=rules, greedy=temp == 0.0 and neutral, neutral=neutral,
                          top_k=top_k if temp > 0.0 else 0)

    def close(self) -> None:
        self._model.close()


class NativeAdapter:
    """A LoRA adapter (GGUF) loaded for a model; contexts that use it apply it to every token."""

    def __init__(self, model: NativeModel, path: Path):
        llama = _llama()
        self._llama = llama
        self.path = path
        adapter = llama.llama_adapter_lora_init(model.model, str(path).encode("utf-8"))
        if adapter is None:
            raise ModelFileError(f"llama.cpp could not load the LoRA adapter {path} for this "
                                 "model")
        self.adapter = adapter

    def close(self) -> None:
        if self.adapter is not None:
            self._llama.llama_adapter_lora_free(self.adapter)
            self.adapter = None


class NativeContext:
    """One llama.cpp context: a unified KV cache of ``n_cells`` shared by ``n_seq`` sequences.

    With ``adapter``, every evaluation in this context applies that LoRA (a context of its own
    per adapter: sequences batched together never mix weights).
    """

    def __init__(self, model: NativeModel, *, n_cells: int, n_seq: int, n_batch: int,
                 n_threads: int, n_ubatch: int | None = None, flash_attn: int | None = None,
                 adapter: NativeAdapter | None = None):
        llama = _llama()
        self._llama = llama
        params = llama.llama_context_default_params()
        params.n_ctx = n_cells
        params.n_batch = n_batch
        params.n_ubatch = min(n_ubatch or n_batch, n_batch)
        params.n_seq_max = n_seq
        params.n_threads = n_threads
        params.n_threads_batch = n_threads
        self.n_threads = n_threads
        params.kv_unified = True  # all sequences share the cells, each may use all of them
        params.no_perf = True
        if flash_attn is not None:  # llama.cpp's LLAMA_FLASH_ATTN_TYPE_*: -1 auto, 0 off, 1 on
            params.flash_attn_type = flash_attn
        ctx = llama.llama_init_from_model(model.model, params)
        if ctx is None:
            raise ModelFileError(f"llama.cpp could not create a context of {n_cells} cells")
        self.ctx = ctx
        if adapter is not None:
            adapters = (llama.llama_adapter_lora_p_ctypes * 1)(adapter.adapter)
            scales = (ctypes.c_float * 1)(1.0)
            if llama.llama_set_adapters_lora(ctx, adapters, 1, scales) != 0:
                llama.llama_free(ctx)
                raise ModelFileError(f"llama.cpp could not apply the LoRA adapter {adapter.path}")
        self.memory = llama.llama_get_memory(ctx)
        self.n_cells: int = llama.llama_n_ctx(ctx)
        self.n_batch = n_batch
        self.n_vocab = model.n_vocab
        self.batch = llama.llama_batch_init(n_batch, 0, 1)
        # the batch's arrays, looked up once: the step loop writes into them directly
        self.tokens = self.batch.token
        self.pos = self.batch.pos
        self.seq_ids = [self.batch.seq_id[i] for i in range(n_batch)]
        self.logits = self.batch.logits
        for i in range(n_batch):
            self.batch.n_seq_id[i] = 1
        self._decode = llama.llama_decode
        self._sample = llama.llama_sampler_sample
        self._logits_ith = llama.llama_get_logits_ith
        self._step_logits = StepLogits(ctx, self.n_vocab)

    def put(self, i: int, token: int, pos: int, seq: int, output: bool) -> None:
        self.tokens[i] = token
        self.pos[i] = pos
        self.seq_ids[i][0] = seq
        self.logits[i] = output

    def put_run(self, start: int, tokens: Sequence[int], pos0: int, seq: int) -> None:
        """Tokens ``tokens`` of sequence ``seq`` at positions ``pos0...``, no outputs."""
        tok, pos, ids, out = self.tokens, self.pos, self.seq_ids, self.logits
        for k, token in enumerate(tokens):
            i = start + k
            tok[i] = token
            pos[i] = pos0 + k
            ids[i][0] = seq
            out[i] = 0

    def decode(self, n_tokens: int) -> int:
        """Evaluate the first ``n_tokens`` batch entries; llama.cpp's return code."""
        self.batch.n_tokens = n_tokens
        return int(self._decode(self.ctx, self.batch))

    def set_threads(self, n: int) -> None:
        """Threads for the next evaluations (generation and prompt alike)."""
        self._llama.llama_set_n_threads(self.ctx, n, n)

    def sample(self, chain: Any, i: int) -> int:
        return int(self._sample(chain.sampler, self.ctx, i))

    def output_logits(self, n_outputs: int) -> Any:
        """This step's output logits as an ``(n_outputs, n_vocab)`` numpy view."""
        return self._step_logits(n_outputs)

    def logits_at(self, i: int) -> Any:
        return self._logits_ith(self.ctx, i)

    # -- KV memory ------------------------------------------------------------------------------

    def seq_rm(self, seq: int, p0: int, p1: int) -> None:
        self._llama.llama_memory_seq_rm(self.memory, seq, p0, p1)

    def seq_cp(self, src: int, dst: int, p0: int, p1: int) -> None:
        self._llama.llama_memory_seq_cp(self.memory, src, dst, p0, p1)

    def seq_pos_max(self, seq: int) -> int:
        """Largest position sequence ``seq`` holds in the cache, -1 when it holds none."""
        return int(self._llama.llama_memory_seq_pos_max(self.memory, seq))

    def state_get(self, seq: int) -> ctypes.Array[ctypes.c_uint8] | None:
        """A copy of sequence ``seq``'s keys and values (``None`` if llama.cpp gives nothing)."""
        size = self._llama.llama_state_seq_get_size(self.ctx, seq)
        buf = (ctypes.c_uint8 * size)()
        written = self._llama.llama_state_seq_get_data(self.ctx, buf, size, seq)
        return buf if written == size and size > 0 else None

    def state_set(self, seq: int, data: ctypes.Array[ctypes.c_uint8]) -> bool:
        """Load a state from :meth:`state_get` into the (empty) sequence ``seq``."""
        read = self._llama.llama_state_seq_set_data(self.ctx, data, len(data), seq)
        if read != len(data):
            self.seq_rm(seq, -1, -1)
            return False
        return True

    def close(self) -> None:
        if self.ctx is not None:
            self._llama.llama_batch_free(self.batch)
            self._llama.llama_free(self.ctx)
            self.ctx = None
