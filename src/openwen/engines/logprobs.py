"""Per-token log probabilities read from llama.cpp's logits right after a token is sampled."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from openwen.messages import TokenLogprob


class LogprobReader:
    """Reads the logits a token was sampled from (a ``float *`` of ``n_vocab`` values)."""

    def __init__(self, n_vocab: int, piece_bytes: Callable[[int], bytes], top: int):
        self._n_vocab = n_vocab
        self._piece_bytes = piece_bytes
        self._top = max(0, min(int(top), 20))

    def read(self, token: int, logits_ptr: Any) -> TokenLogprob:
        logits = np.ctypeslib.as_array(logits_ptr, shape=(self._n_vocab,)).astype(np.float64)
        shifted = logits - logits.max()
        logprobs = shifted - np.log(np.exp(shifted).sum())
        top: tuple[tuple[str, float], ...] = ()
        if self._top:
            ids = np.argpartition(-logprobs, self._top)[: self._top]
            ids = ids[np.argsort(-logprobs[ids])]
            top = tuple((self._piece(int(i)), float(logprobs[i])) for i in ids)
        piece = self._piece_bytes(token)
        return TokenLogprob(token=piece.decode("utf-8", errors="replace"),
                            logprob=float(logprobs[token]), bytes=list(piece), top=top)

    def _piece(self, token: int) -> str:
        return self._piece_bytes(token).decode("utf-8", errors="replace")
