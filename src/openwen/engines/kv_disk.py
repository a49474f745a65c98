"""KV state of long conversations on disk, so resuming one does not re-read its history.

A saved sequence is two files in a folder per model file (its path, size and mtime) under
``<home>/kvcache/``: ``<key>.kv`` written by ``llama_state_seq_save_file`` and ``<key>.tokens``, its
token ids (4 bytes each), where the key hashes the tokens. Looking a prompt up compares it with the
token lists of all saved states (they are few: the folder is capped) and takes the longest common
prefix, so the next turn of a saved conversation hits even when the saved answer was re-tokenised
slightly differently. The folder is capped in bytes; least recently used states go first. Only the
engine's owner thread touches an instance.
"""

from __future__ import annotations

import hashlib
import logging
import os
from array import array
from dataclasses import dataclass
from pathlib import Path

from openwen.engines.kv_slots import common_prefix

log = logging.getLogger(__name__)

STATE = ".kv"
TOKENS = ".tokens"


def prefix_key(tokens: list[int]) -> str:
    digest = hashlib.sha256(array("i", tokens).tobytes()).hexdigest()[:32]
    return f"{digest}-{len(tokens)}"


def model_folder(root: Path, model_path: Path) -> Path:
    """The cache folder for one model file: a saved state is only valid for the same weights."""
    st = model_path.stat()
    ident = f"{model_path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    return root / f"{model_path.stem}-{hashlib.sha256(ident.encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class DiskEntry:
    """A saved state: ``n_tokens`` tokens in the file, ``match`` of them shared with a prompt."""

    path: Path
    n_tokens: int
    match: int


class DiskKVStore:
    """Saved sequence states of one model, looked up by longest common prefix."""

    def __init__(self, folder: Path, cap_bytes: int):
        self.folder = folder
        self.cap_bytes = cap_bytes
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.tmp"):
            stale.unlink(missing_ok=True)
        self._tokens: dict[str, list[int]] = {}
        for path in folder.glob("*" + STATE):
            self._remember(path)

    def __len__(self) -> int:
        return len(self._tokens)

    def _remember(self, path: Path) -> None:
        try:
            data = path.with_suffix(TOKENS).read_bytes()
        except OSError:
            path.unlink(missing_ok=True)  # a state without its tokens is of no use
            return
        tokens = array("i")
        tokens.frombytes(data[: len(data) - len(data) % tokens.itemsize])
        self._tokens[path.stem] = tokens.tolist()

    def path_for(self, tokens: list[int]) -> Path:
        return self.folder / (prefix_key(tokens) + STATE)

    def has(self, tokens: list[int]) -> bool:
        return prefix_key(tokens) in self._tokens

    def find(self, tokens: list[int], longer_than: int = 0) -> DiskEntry | None:
        """The saved state sharing the longest prefix with ``tokens``, if longer than
        ``longer_than`` tokens."""
        best: DiskEntry | None = None
        for key, saved in self._tokens.items():
            n = common_prefix(saved, tokens)
            if n > longer_than and (best is None or n > best.match):
                best = DiskEntry(self.folder / (key + STATE), len(saved), n)
        return best

    def added(self, tokens: list[int]) -> None:
        """The state of ``tokens`` was just written to :meth:`path_for`: record its tokens."""
        path = self.path_for(tokens)
        tmp = path.with_suffix(TOKENS + ".tmp")
        tmp.write_bytes(array("i", tokens).tobytes())
        os.replace(tmp, path.with_suffix(TOKENS))
        self._tokens[path.stem] = list(tokens)
        self.trim()

    def touch(self, path: Path) -> None:
        try:
            os.utime(path)
        except OSError:
            pass

    def discard(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        path.with_suffix(TOKENS).unlink(missing_ok=True)
        self._tokens.pop(path.stem, None)

    def size_bytes(self) -> int:
        return sum(size for _, size, _ in self._files())

    def _files(self) -> list[tuple[float, int, Path]]:
        files = []
        for path in self.folder.glob("*" + STATE):
            try:
                st = path.stat()
            except OSError:
                continue
            files.append((st.st_mtime, st.st_size, path))
        return files

    def trim(self) -> None:
        """Drop least recently used states until the folder fits its cap."""
        files = self._files()
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.cap_bytes:
                break
            log.debug("kv cache: dropping %s (%d bytes) to stay under the cap", path.name, size)
            self.discard(path)
            total -= size
