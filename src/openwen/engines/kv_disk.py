"""KV state of long conversations on disk, so resuming one does not re-read its history.

A saved state is one file per token prefix, named by a hash of the prefix and its length
(``<sha256 of the tokens>-<n>.kv``), in a folder per model file (its name, size and mtime), under
``<home>/kvcache/``. Looking a prompt up hashes its first ``n`` tokens for each saved length ``n``
(a handful) and takes the longest hit. The folder is capped in bytes; the least recently used files
go first. Only the engine's owner thread touches an instance.
"""

from __future__ import annotations

import hashlib
import logging
import os
from array import array
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SUFFIX = ".kv"


def prefix_key(tokens: list[int]) -> str:
    return hashlib.sha256(array("i", tokens).tobytes()).hexdigest()[:32]


def model_folder(root: Path, model_path: Path) -> Path:
    """The cache folder for one model file: a saved state is only valid for the same weights."""
    st = model_path.stat()
    ident = f"{model_path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    return root / f"{model_path.stem}-{hashlib.sha256(ident.encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class DiskEntry:
    path: Path
    n_tokens: int


class DiskKVStore:
    """Saved sequence states of one model, looked up by longest token prefix."""

    def __init__(self, folder: Path, cap_bytes: int):
        self.folder = folder
        self.cap_bytes = cap_bytes
        folder.mkdir(parents=True, exist_ok=True)
        self._index: dict[int, set[str]] = {}
        for path in folder.glob("*" + SUFFIX):
            self._remember(path)
        for stale in folder.glob("*.tmp"):
            stale.unlink(missing_ok=True)

    def __len__(self) -> int:
        return sum(len(keys) for keys in self._index.values())

    def _remember(self, path: Path) -> None:
        key, _, n = path.stem.rpartition("-")
        if key and n.isdigit():
            self._index.setdefault(int(n), set()).add(key)

    def _forget(self, path: Path) -> None:
        key, _, n = path.stem.rpartition("-")
        keys = self._index.get(int(n)) if n.isdigit() else None
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._index[int(n)]

    def path_for(self, tokens: list[int]) -> Path:
        return self.folder / f"{prefix_key(tokens)}-{len(tokens)}{SUFFIX}"

    def has(self, tokens: list[int]) -> bool:
        return prefix_key(tokens) in self._index.get(len(tokens), ())

    def find(self, tokens: list[int], longer_than: int = 0) -> DiskEntry | None:
        """The longest saved prefix of ``tokens`` with more than ``longer_than`` tokens."""
        for n in sorted(self._index, reverse=True):
            if n <= longer_than:
                break
            if n <= len(tokens) and prefix_key(tokens[:n]) in self._index[n]:
                path = self.folder / f"{prefix_key(tokens[:n])}-{n}{SUFFIX}"
                if path.exists():
                    return DiskEntry(path, n)
                self._forget(path)
        return None

    def added(self, path: Path) -> None:
        """``path`` was just written: index it and trim the folder to its cap."""
        self._remember(path)
        self.trim()

    def touch(self, path: Path) -> None:
        try:
            os.utime(path)
        except OSError:
            pass

    def discard(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        self._forget(path)

    def trim(self) -> None:
        files = []
        for path in self.folder.glob("*" + SUFFIX):
            try:
                st = path.stat()
            except OSError:
                continue
            files.append((st.st_mtime, st.st_size, path))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.cap_bytes:
                break
            log.debug("kv cache: dropping %s (%d bytes) to stay under the cap", path.name, size)
            self.discard(path)
            total -= size
