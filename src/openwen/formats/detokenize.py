"""UTF-8-safe incremental detokenising.

Byte-level BPE tokens (Qwen, SmolLM2, Llama 3) often end in the middle of a multi-byte character:
one Chinese character or emoji may span two or three tokens. Decoding each piece alone would print
U+FFFD garbage mid-stream. :class:`IncrementalDetokenizer` returns only complete characters and
holds back an incomplete trailing sequence until the next token completes it.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable


class IncrementalDetokenizer:
    """Turn token ids into text, one token at a time, never splitting a UTF-8 character.

    ``piece_bytes(token_id)`` returns the token's raw bytes (e.g. llama.cpp's ``token_to_piece``).
    Bytes that can never become valid UTF-8 are replaced with U+FFFD as soon as that is certain;
    an incomplete sequence still pending at :meth:`flush` becomes U+FFFD too.
    """

    def __init__(self, piece_bytes: Callable[[int], bytes]):
        self._piece_bytes = piece_bytes
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def add(self, token_id: int) -> str:
        """The text this token completes (may be empty while a character is incomplete)."""
        return self._decoder.decode(self._piece_bytes(token_id))

    def add_bytes(self, data: bytes) -> str:
        """Like :meth:`add` for raw bytes already looked up."""
        return self._decoder.decode(data)

    @property
    def pending(self) -> bytes:
        """Bytes held back because they may start a character."""
        return self._decoder.getstate()[0]

    def flush(self) -> str:
        """End of stream: what is left, incomplete sequences as U+FFFD. Resets the state."""
        text = self._decoder.decode(b"", final=True)
        self._decoder.reset()
        return text
