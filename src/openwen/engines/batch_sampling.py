"""Sampling for the batched engine: a fast path for greedy requests, sample-first grammars.

Each request gets a :class:`JobSampler` built from its sampling parameters:

- **greedy** (temperature 0, no repetition penalties, no grammar): the token is the argmax of the
  logits, taken with numpy for every greedy sequence of a step at once
  (:func:`greedy_tokens`), instead of llama.cpp building a candidate array of the whole
  vocabulary per sequence. Same token as llama.cpp's greedy sampler (the first maximum).
- **chain**: llama.cpp's sampler chain in llama-cpp-python's order (``llama_sampler_sample``).
- **grammar** (JSON mode, JSON Schema, forced tool calls): sample first with the chain *without*
  the grammar, then ask the grammar about that one token; only when it is rejected does the
  grammar filter the whole vocabulary and the chain sample again (what llama.cpp's own
  ``common_sampler`` does). Checking one token costs microseconds; the full check costs a pass of
  the grammar over every token of the vocabulary. Both samplers then accept the chosen token.
  The output always satisfies the grammar; with a seed it repeats exactly.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any

import numpy as np

TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])


def _llama() -> Any:
    import llama_cpp

    return llama_cpp


class Candidates:
    """A reusable ``llama_token_data_array`` over the whole vocabulary (owner thread only)."""

    def __init__(self, n_vocab: int):
        llama = _llama()
        self.n_vocab = n_vocab
        self.data = np.zeros(n_vocab, dtype=TOKEN_DATA)
        self._ids = np.arange(n_vocab, dtype=np.int32)
        self._ptr = self.data.ctypes.data_as(ctypes.POINTER(llama.llama_token_data))
        self.array = llama.llama_token_data_array(data=self._ptr, size=n_vocab, selected=-1,
                                                  sorted=False)
        self.ref = ctypes.byref(self.array)
        self.one = np.zeros(1, dtype=TOKEN_DATA)
        self.one_array = llama.llama_token_data_array(
            data=self.one.ctypes.data_as(ctypes.POINTER(llama.llama_token_data)), size=1,
            selected=-1, sorted=False)

    def fill(self, logits: np.ndarray) -> Any:
        """Every token with its logit; returns the array's reference for ``llama_sampler_apply``."""
        data = self.data
        data["id"] = self._ids
        data["logit"] = logits
        data["p"] = 0.0
        arr = self.array
        arr.data, arr.size, arr.selected, arr.sorted = self._ptr, self.n_vocab, -1, False
        return self.ref

    def selected(self) -> int:
        arr = self.array
        return int(arr.data[arr.selected].id)

    def single(self, token: int, logit: float) -> Any:
        self.one[0] = (token, logit, 0.0)
        self.one_array.size, self.one_array.selected, self.one_array.sorted = 1, -1, False
        return ctypes.byref(self.one_array)


class JobSampler:
    """One request's sampler: ``greedy``, ``chain`` or ``grammar`` (see the module docstring)."""

    def __init__(self, chain: Any, *, grammar: Any | None = None, greedy: bool = False):
        self.chain = chain  # llama_cpp._internals.LlamaSampler, without the grammar
        self.grammar = grammar  # a llama_sampler* of its own, or None
        self.greedy = greedy and grammar is None
        self.rejections = 0  # grammar: sampled tokens the grammar turned down

    @property
    def kind(self) -> str:
        return "greedy" if self.greedy else "grammar" if self.grammar is not None else "chain"

    def sample(self, ctx: Any, index: int, logits: np.ndarray, cand: Candidates) -> int:
        """The next token from batch entry ``index`` (``logits`` is its row)."""
        llama = _llama()
        if self.greedy:
            return int(logits.argmax())
        if self.grammar is None:
            return int(llama.llama_sampler_sample(self.chain.sampler, ctx, index))
        chain = self.chain.sampler
        llama.llama_sampler_apply(chain, cand.fill(logits))
        token = cand.selected()
        check = cand.single(token, 0.0)
        llama.llama_sampler_apply(self.grammar, check)
        if not np.isfinite(cand.one[0]["logit"]):  # rejected: the grammar filters everything
            self.rejections += 1
            ref = cand.fill(logits)
            llama.llama_sampler_apply(self.grammar, ref)
            llama.llama_sampler_apply(chain, ref)
            token = cand.selected()
        llama.llama_sampler_accept(self.grammar, token)
        llama.llama_sampler_accept(chain, token)
        return token

    def close(self) -> None:
        if self.grammar is not None:
            _llama().llama_sampler_free(self.grammar)
            self.grammar = None
        self.chain.close()


def greedy_tokens(logits: np.ndarray, rows: Sequence[int]) -> list[int]:
    """The argmax of each of ``rows`` of the step's output logits, in one numpy call."""
    if len(rows) == 1:
        return [int(logits[rows[0]].argmax())]
    return [int(t) for t in logits[list(rows)].argmax(axis=1)]


def step_logits(ctx: Any, n_outputs: int, n_vocab: int) -> np.ndarray:
    """The logits of this step's outputs (rows in batch order), as a numpy view (no copy)."""
    ptr = _llama().llama_get_logits(ctx)
    return np.ctypeslib.as_array(ptr, shape=(n_outputs, n_vocab))
