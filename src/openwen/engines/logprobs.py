"""Per-token log probabilities read from llama.cpp's logits right after a token is sampled."""

from __future__ import annotations

from typing import Any

import numpy as np

from openwen.messages import TokenLogprob


class LogprobReader:
    """Reads the logits of the last decoded position (the ones the token was sampled from)."""

    def __init__(self, llm: Any, top: int):
        self._llm = llm
        self._top = max(0, min(int(top), 20))
        self._n_vocab = llm.n_vocab()

    def read(self, token: int) -> TokenLogprob:
        ptr = self._llm._ctx.get_logits_ith(-1)
        logits = np.ctypeslib.as_array(ptr, shape=(self._n_vocab,)).astype(np.float64)
        shifted = logits - logits.max()
        logprobs = shifted - np.log(np.exp(shifted).sum())
        top: tuple[tuple[str, float], ...] = ()
        if self._top:
            ids = np.argpartition(-logprobs, self._top)[: self._top]
            ids = ids[np.argsort(-logprobs[ids])]
            top = tuple((self._piece(int(i)), float(logprobs[i])) for i in ids)
        piece = self._llm._model.detokenize([token], special=False)
        return TokenLogprob(token=piece.decode("utf-8", errors="replace"),
                            logprob=float(logprobs[token]), bytes=list(piece), top=top)

    def _piece(self, token: int) -> str:
        return self._llm._model.detokenize([token], special=False).decode("utf-8", errors="replace")
