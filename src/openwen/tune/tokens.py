"""llama.cpp's own tokenizer and chat format for a GGUF file (vocabulary only, no weights).

Training tokenises with the same tokenizer the engines serve with, so the derivative learns
exactly the token sequences it will see and produce.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

from openwen.engines.decoding import chat_format, check_gguf, needs_bos
from openwen.errors import EngineError, ModelFileError
from openwen.formats import ChatFormat


class GGUFTokenizer:
    """Tokenizer, metadata and chat format of a GGUF model, loaded without its weights."""

    def __init__(self, path: Path):
        import llama_cpp
        from llama_cpp._internals import LlamaModel
        from llama_cpp._logger import set_verbose

        set_verbose(False)
        check_gguf(path)
        llama_cpp.llama_backend_init()
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        try:
            self._model = LlamaModel(path_model=str(path), params=params, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise ModelFileError(f"llama.cpp could not read {path}: {exc}") from exc
        self._llama = llama_cpp
        self.vocab = self._model.vocab
        self.metadata: dict[str, str] = self._model.metadata()
        self.bos_text = self._text(int(self._model.token_bos()))
        self.eos_text = self._text(int(self._model.token_eos()))
        self.adds_bos = bool(self._model.add_bos_token())
        self.format: ChatFormat = chat_format(self.metadata, bos_text=self.bos_text,
                                              eos_text=self.eos_text)

    def _text(self, token: int) -> str:
        return self._model.token_get_text(token) if token >= 0 else ""

    def __call__(self, text: str, first: bool) -> list[int]:
        """Token ids of ``text``; BOS only for the first piece of an example, if the model wants
        one and the text does not already start with it."""
        add_bos = first and needs_bos(text, adds_bos=self.adds_bos, bos_text=self.bos_text)
        data = text.encode("utf-8")
        capacity = len(data) + 8
        buf: Any = (self._llama.llama_token * capacity)()
        n = self._llama.llama_tokenize(self.vocab, data, len(data), buf, capacity, add_bos, True)
        if n < 0:
            capacity = -n
            buf = (self._llama.llama_token * capacity)()
            n = self._llama.llama_tokenize(self.vocab, data, len(data), buf, capacity, add_bos,
                                           True)
        if n < 0:
            raise EngineError(f"llama.cpp could not tokenize {len(data)} bytes")
        return list(buf[:n])

    def detokenize(self, ids: list[int]) -> str:
        out = b""
        buf = ctypes.create_string_buffer(256)
        for t in ids:
            n = self._llama.llama_token_to_piece(self.vocab, t, buf, len(buf), 0, False)
            out += buf.raw[: max(n, 0)]
        return out.decode("utf-8", errors="replace")

    def close(self) -> None:
        self._model.close()
