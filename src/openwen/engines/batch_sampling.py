"""Sampling for the batched engine: a fast path for greedy requests, sample-first grammars.

Each request gets a :class:`JobSampler` built from its sampling parameters:

- **greedy** (temperature 0, no repetition penalties, no grammar): the token is the argmax of the
  logits, taken with numpy for every greedy sequence of a step at once
  (:func:`greedy_tokens`), instead of llama.cpp building a candidate array of the whole
  vocabulary per sequence. Same token as llama.cpp's greedy sampler (the first maximum).
- **chain**: llama.cpp's sampler chain in llama-cpp-python's order (``llama_sampler_sample``).
- **grammar** (JSON mode, JSON Schema, forced tool calls): sample first as if there were no
  grammar (greedy: numpy's argmax; without repetition penalties: ``llama_sampler_sample``, the
  unconstrained request's own call), then ask the grammar about that one token (microseconds).
  Only when it is rejected does the grammar filter candidates and the chain sample again (what
  llama.cpp's own ``common_sampler`` does): first only the 256, then the 4096 highest logits,
  which gives the same token as filtering everything whenever they hold enough allowed tokens
  (see :meth:`JobSampler._top_block`), else the whole vocabulary (a pass of the grammar over
  every token: milliseconds). The grammar then accepts the chosen token.
  The output always satisfies the grammar; with a seed it repeats exactly.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any

import numpy as np

TOP_BLOCKS = (256, 4096)  # after a grammar rejection, the highest logits checked first
NEGLIGIBLE_LOGITS = 30.0  # a token this far below the best allowed one: e^-30, never drawn
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

    def fill_top(self, logits: np.ndarray, k: int) -> Any:
        """Only the ``k`` tokens with the highest logits (in no particular order)."""
        top = np.argpartition(logits, -k)[-k:]
        data = self.data
        data["id"][:k] = top
        data["logit"][:k] = logits[top]
        data["p"][:k] = 0.0
        arr = self.array
        arr.data, arr.size, arr.selected, arr.sorted = self._ptr, k, -1, False
        return self.ref

    def selected(self) -> int:
        arr = self.array
        return int(arr.data[arr.selected].id)

    def single(self, token: int, logit: float) -> Any:
        self.one[0] = (token, logit, 0.0)
        self.one_array.size, self.one_array.selected, self.one_array.sorted = 1, -1, False
        return ctypes.byref(self.one_array)


class JobSampler:
    """One request's sampler: ``greedy``, ``chain`` or ``grammar`` (see the module docstring).

    ``neutral``: no repetition penalties (the chain's order of logits is the model's);
    ``top_k``: the chain's top-k (0 when it samples from everything or is greedy).
    """

    def __init__(self, chain: Any, *, grammar: Any | None = None, greedy: bool = False,
                 neutral: bool = False, top_k: int = 0):
        self.chain = chain  # llama_cpp._internals.LlamaSampler, without the grammar
        self.grammar = grammar  # a llama_sampler* of its own, or None
        self.greedy = greedy and grammar is None
        self.argmax = greedy  # greedy with or without a grammar: the chain is an argmax
        self.neutral = neutral
        self.top_k = top_k
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
        token = self._first_pick(ctx, index, logits, cand)
        if not self._allows(token, cand):  # rejected: the grammar must filter the candidates
            self.rejections += 1
            token = self._top_block(logits, cand)
            if token < 0:
                token = self._whole_vocabulary(logits, cand)
        llama.llama_sampler_accept(self.grammar, token)
        if not self.neutral:  # llama_sampler_sample accepted it already otherwise
            llama.llama_sampler_accept(self.chain.sampler, token)
        return token

    def _first_pick(self, ctx: Any, index: int, logits: np.ndarray, cand: Candidates) -> int:
        """The chain's token as if there were no grammar. Greedy: numpy's argmax (the greedy
        sampler's token). Without penalties: llama.cpp samples from the logits in C, as for an
        unconstrained request (and accepts the token into the chain, which for these samplers
        only advances nothing). Otherwise the chain runs over the filled candidate array."""
        llama = _llama()
        if self.argmax:
            return int(logits.argmax())
        if self.neutral:
            return int(llama.llama_sampler_sample(self.chain.sampler, ctx, index))
        llama.llama_sampler_apply(self.chain.sampler, cand.fill(logits))
        return cand.selected()

    def _allows(self, token: int, cand: Candidates) -> bool:
        """Whether the grammar, in its current state, accepts ``token`` next."""
        _llama().llama_sampler_apply(self.grammar, cand.single(token, 0.0))
        return bool(np.isfinite(cand.one[0]["logit"]))

    def _top_block(self, logits: np.ndarray, cand: Candidates) -> int:
        """After a rejection: the grammar checks only the highest logits (``TOP_BLOCKS``: 256,
        then 4096), not the whole vocabulary (a pass over every token costs milliseconds).

        Greedy: the highest allowed logit in the block is the whole vocabulary's. Top-k
        sampling without penalties: with ``top_k`` allowed tokens in the block, the chain keeps
        the same tokens in the same order (every allowed token outside ranks below them); with
        fewer, the block is used when every token outside it lies ``NEGLIGIBLE_LOGITS`` below the
        best allowed one (probability e^-30 each: top-p and min-p drop them, and they could be
        drawn only with top_p 1 and min_p 0, at odds below 1e-8 per token). Otherwise -1: the
        caller filters everything."""
        greedy = self.argmax
        if not (greedy or (self.neutral and 0 < self.top_k <= TOP_BLOCKS[0] // 2)):
            return -1
        llama = _llama()
        for size in TOP_BLOCKS:
            if size >= cand.n_vocab:
                return -1
            ref = cand.fill_top(logits, size)
            lowest = float(cand.data["logit"][:size].min())
            llama.llama_sampler_apply(self.grammar, ref)
            block = cand.data[:size]
            allowed = np.isfinite(block["logit"])
            n_allowed = int(allowed.sum())
            if n_allowed == 0:
                continue
            if greedy:
                return int(block["id"][block["logit"].argmax()])
            best = float(block["logit"].max())
            if n_allowed >= self.top_k or lowest < best - NEGLIGIBLE_LOGITS:
                llama.llama_sampler_apply(self.chain.sampler, ref)
                return cand.selected()
        return -1

    def _whole_vocabulary(self, logits: np.ndarray, cand: Candidates) -> int:
        llama = _llama()
        ref = cand.fill(logits)
        llama.llama_sampler_apply(self.grammar, ref)
        if self.argmax:  # the grammar only sets logits to -inf, in place
            return int(cand.data["id"][cand.data["logit"].argmax()])
        llama.llama_sampler_apply(self.chain.sampler, ref)
        return cand.selected()

    def close(self) -> None:
        if self.grammar is not None:
            _llama().llama_sampler_free(self.grammar)
            self.grammar = None
        self.chain.close()


def greedy_tokens(logits: np.ndarray, rows: Sequence[int]) -> list[int]:
    """The argmax of each of ``rows`` of the step's output logits, in one numpy call.

    When the rows are the first ``len(rows)`` (every output greedy, the usual case) they are a
    slice of the logits (no copy); otherwise the argmax runs over every row up to the last one
    asked for, which costs less than gathering the rows into a copy first (measured: a copy of 4
    rows of 49,152 logits ~3x the argmax of the slice)."""
    if len(rows) == 1:
        return [int(logits[rows[0]].argmax())]
    last = rows[-1]
    best = logits[: last + 1].argmax(axis=1).tolist()
    if len(rows) == last + 1:
        return best  # type: ignore[no-any-return]
    return [best[row] for row in rows]


class StepLogits:
    """The step's output logits as numpy rows, one view reused while llama.cpp keeps its buffer.

    ``np.ctypeslib.as_array`` per step cost ~100-150 us on the owner thread right after a decode
    (4 streams, bundled model); the buffer only moves when llama.cpp grows it, so the view is
    rebuilt only when the pointer or the row count changes."""

    def __init__(self, ctx: Any, n_vocab: int):
        self._ctx = ctx
        self._n_vocab = n_vocab
        self._get = _llama().llama_get_logits
        self._views: dict[int, np.ndarray] = {}
        self._address = 0

    def __call__(self, n_outputs: int) -> np.ndarray:
        ptr = self._get(self._ctx)  # also synchronises the context, as llama.cpp requires
        address = ctypes.cast(ptr, ctypes.c_void_p).value or 0
        if address != self._address:
            self._views.clear()
            self._address = address
        view = self._views.get(n_outputs)
        if view is None:
            view = np.ctypeslib.as_array(ptr, shape=(n_outputs, self._n_vocab))
            self._views[n_outputs] = view
        return view


def step_logits(ctx: Any, n_outputs: int, n_vocab: int) -> np.ndarray:
    """The logits of this step's outputs (rows in batch order), as a numpy view (no copy)."""
    ptr = _llama().llama_get_logits(ctx)
    return np.ctypeslib.as_array(ptr, shape=(n_outputs, n_vocab))
