"""Saved KV states of sequences that left the live cache: in RAM, then on disk.

A saved state is a sequence's keys and values as ``llama_state_seq_get_data`` returns them, plus
its token ids. States live in RAM up to ``ram_bytes`` (least recently used leave first); a state
leaving RAM is written to disk when it holds at least ``disk_min_tokens`` tokens and a folder is
configured, else dropped. On disk a state is ``<key>.kv`` (the bytes) and ``<key>.tokens`` (4 bytes
per token) in a folder per model file, capped at ``disk_bytes``; the key hashes the tokens and ends
with the state's salt tag (``ChatRequest.cache_salt``), and a state only matches prompts of the
same tag. At
shutdown the RAM states worth keeping go to disk too, so an old long conversation resumes without
re-reading its history after a restart.

Looking a prompt up compares it with every saved token list (there are few) and returns the state
sharing the longest prefix. Only the engine's owner thread touches a store.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from openwen.engines.kv_slots import common_prefix

log = logging.getLogger(__name__)

STATE = ".kv"
TOKENS = ".tokens"
Buffer = ctypes.Array[ctypes.c_uint8]


def state_key(tokens: list[int], tag: str = "") -> str:
    digest = hashlib.sha256(array("i", tokens).tobytes()).hexdigest()[:32]
    return f"{digest}-{len(tokens)}-{tag}" if tag else f"{digest}-{len(tokens)}"


def key_tag(key: str) -> str:
    """The salt tag a state key (file stem) ends with; "" for an unsalted state."""
    parts = key.split("-")
    return parts[2] if len(parts) > 2 else ""


def model_folder(root: Path, model_path: Path, adapter: Path | None = None) -> Path:
    """The folder for one model file (plus LoRA adapter, if any): a saved state is only valid
    for the same weights, and KV computed with an adapter never serves a request without it."""
    ident = _file_ident(model_path)
    stem = model_path.stem
    if adapter is not None:
        ident += "|lora|" + _file_ident(adapter)
        stem += f"+{adapter.parent.name}"
    return root / f"{stem}-{hashlib.sha256(ident.encode()).hexdigest()[:12]}"


def _file_ident(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


@dataclass(eq=False)
class SavedState:
    key: str
    tokens: list[int]
    tag: str = ""  # salt tag
    data: Buffer | None = None  # in RAM
    path: Path | None = None  # on disk
    size: int = 0
    last_used: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Hit:
    state: SavedState
    match: int  # tokens shared with the prompt


class KVStore:
    """RAM and disk tiers of saved sequence states, looked up by longest common prefix."""

    def __init__(self, *, ram_bytes: int, folder: Path | None = None, disk_bytes: int = 0,
                 disk_min_tokens: int = 512):
        self.ram_bytes = ram_bytes
        self.folder = folder if disk_bytes > 0 else None
        self.disk_bytes = disk_bytes
        self.disk_min_tokens = disk_min_tokens
        self._states: dict[str, SavedState] = {}
        self.ram_used = 0
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            for stale in self.folder.glob("*.tmp"):
                stale.unlink(missing_ok=True)
            for path in self.folder.glob("*" + STATE):
                self._index_file(path)

    def __len__(self) -> int:
        return len(self._states)

    def __iter__(self) -> Iterator[SavedState]:
        return iter(list(self._states.values()))

    @property
    def accepts(self) -> bool:
        """Whether anything put here can be kept."""
        return self.ram_bytes > 0 or self.folder is not None

    def has(self, tokens: list[int], tag: str = "") -> bool:
        return state_key(tokens, tag) in self._states

    def find(self, tokens: list[int], longer_than: int = 0, tag: str = "") -> Hit | None:
        """The saved state of salt tag ``tag`` sharing the longest prefix with ``tokens``, if
        longer than ``longer_than`` tokens."""
        best: Hit | None = None
        for state in self._states.values():
            if state.tag != tag:
                continue
            n = common_prefix(state.tokens, tokens)
            if n > longer_than and (best is None or n > best.match):
                best = Hit(state, n)
        return best

    def put(self, tokens: list[int], data: Buffer, tag: str = "") -> None:
        """Keep a sequence's state (RAM first; it may go straight to disk or be dropped). States
        of the same tag whose tokens are a prefix of ``tokens`` are superseded and dropped."""
        key = state_key(tokens, tag)
        for old in list(self._states.values()):  # earlier turns of this conversation are covered
            if (old.tag == tag and len(old.tokens) <= len(tokens)
                    and tokens[: len(old.tokens)] == old.tokens):
                self.discard(old)
        state = SavedState(key, list(tokens), tag=tag, data=data, size=len(data))
        self._states[key] = state
        self.ram_used += state.size
        self._trim_ram()

    def read(self, state: SavedState) -> Buffer | None:
        """The state's bytes, from RAM or disk (``None`` if the file is gone)."""
        state.last_used = time.monotonic()
        if state.data is not None:
            return state.data
        if state.path is None:
            return None
        try:
            with state.path.open("rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                buf = (ctypes.c_uint8 * size)()
                fh.readinto(buf)
            os.utime(state.path)
        except OSError:
            self.discard(state)
            return None
        return buf

    def discard(self, state: SavedState) -> None:
        self._states.pop(state.key, None)
        self._drop(state)

    def flush(self) -> None:
        """Write every RAM state worth keeping to disk (at shutdown)."""
        for state in list(self._states.values()):
            if state.data is not None:
                self._to_disk(state)
        self._trim_disk()

    # -- tiers ---------------------------------------------------------------------------------

    def _drop(self, state: SavedState) -> None:
        if state.data is not None:
            self.ram_used -= state.size
            state.data = None
        if state.path is not None:
            state.path.unlink(missing_ok=True)
            state.path.with_suffix(TOKENS).unlink(missing_ok=True)
            state.path = None

    def _trim_ram(self) -> None:
        in_ram = sorted((s for s in self._states.values() if s.data is not None),
                        key=lambda s: s.last_used)
        for state in in_ram:
            if self.ram_used <= self.ram_bytes:
                break
            self._to_disk(state)
            self.ram_used -= state.size
            state.data = None
            if state.path is None:
                del self._states[state.key]
        self._trim_disk()

    def _to_disk(self, state: SavedState) -> None:
        if (self.folder is None or state.path is not None or state.data is None
                or len(state.tokens) < self.disk_min_tokens or state.size > self.disk_bytes):
            return
        path = self.folder / (state.key + STATE)
        try:
            _write(path.with_suffix(TOKENS), array("i", state.tokens).tobytes())
            _write(path, memoryview(state.data))
        except OSError as exc:
            log.warning("kv cache: could not write %s: %s", path, exc)
            return
        state.path = path

    def _index_file(self, path: Path) -> None:
        try:
            raw = path.with_suffix(TOKENS).read_bytes()
            size = path.stat().st_size
        except OSError:
            path.unlink(missing_ok=True)  # a state without its tokens is of no use
            return
        tokens = array("i")
        tokens.frombytes(raw[: len(raw) - len(raw) % tokens.itemsize])
        self._states[path.stem] = SavedState(path.stem, tokens.tolist(), tag=key_tag(path.stem),
                                             path=path, size=size,
                                             last_used=path.stat().st_mtime - time.time()
                                             + time.monotonic())

    def _trim_disk(self) -> None:
        on_disk = sorted((s for s in self._states.values() if s.path is not None),
                         key=lambda s: s.last_used)
        total = sum(s.size for s in on_disk)
        for state in on_disk:
            if total <= self.disk_bytes:
                break
            total -= state.size
            assert state.path is not None
            state.path.unlink(missing_ok=True)
            state.path.with_suffix(TOKENS).unlink(missing_ok=True)
            state.path = None
            if state.data is None:
                del self._states[state.key]


def _write(path: Path, data: bytes | memoryview) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
