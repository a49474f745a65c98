"""Bookkeeping for the KV cache's sequences ("slots") and cells.

Each slot is one llama.cpp sequence id. It remembers the tokens whose keys and values it holds
(positions ``0..len-1``), whether a request is using it, and when it was last used. Cells are
counted the way llama.cpp's unified cache stores them: one cell per token per sequence, except that
a prefix copied from another sequence (``llama_memory_seq_cp``) shares the same cells, so the
:class:`CellLedger` tracks cell ids with reference counts.

Each slot also carries the salt tag of the request that filled it (:func:`salt_tag` of
``ChatRequest.cache_salt``): prefixes are only ever matched, copied or continued under the same tag.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from typing import Protocol


class KVMemory(Protocol):
    """The llama.cpp calls slot bookkeeping mirrors (implemented by ``NativeContext``)."""

    def seq_rm(self, seq: int, p0: int, p1: int) -> None: ...

    def seq_cp(self, src: int, dst: int, p0: int, p1: int) -> None: ...


def salt_tag(salt: str | None) -> str:
    """A short, file-name-safe tag for a cache salt ("" for no salt)."""
    return "" if salt is None else hashlib.sha256(salt.encode("utf-8")).hexdigest()[:16]


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of two token lists (binary search over C slices)."""
    hi = min(len(a), len(b))
    if a[:hi] == b[:hi]:
        return hi
    lo = 0  # a[:lo] == b[:lo] holds, a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


class CellLedger:
    """Counts KV cells in use; cells shared by several sequences count once."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.used = 0
        self._refs: dict[int, int] = {}
        self._ids = itertools.count()

    @property
    def free(self) -> int:
        return self.capacity - self.used

    def alloc(self, n: int) -> list[int]:
        ids = [next(self._ids) for _ in range(n)]
        refs = self._refs
        for cell in ids:
            refs[cell] = 1
        self.used += n
        return ids

    def share(self, cells: list[int]) -> None:
        refs = self._refs
        for cell in cells:
            refs[cell] += 1

    def release(self, cells: list[int]) -> None:
        refs = self._refs
        for cell in cells:
            left = refs[cell] - 1
            if left:
                refs[cell] = left
            else:
                del refs[cell]
                self.used -= 1


@dataclass(eq=False)
class Slot:
    """One sequence of the KV cache."""

    seq_id: int
    tokens: list[int] = field(default_factory=list)
    cells: list[int] = field(default_factory=list)
    busy: bool = False
    last_used: float = 0.0
    saved: bool = False  # its current tokens are on disk already
    tag: str = ""  # salt tag of the requests whose tokens it holds

    def __len__(self) -> int:
        return len(self.tokens)


class SlotTable:
    """The slots and cells, kept in step with the llama.cpp memory they describe."""

    def __init__(self, n_slots: int, capacity: int, memory: KVMemory):
        self.slots = [Slot(i) for i in range(n_slots)]
        self.ledger = CellLedger(capacity)
        self.memory = memory

    @property
    def free_cells(self) -> int:
        return self.ledger.free

    def idle(self) -> list[Slot]:
        return [s for s in self.slots if not s.busy]

    def lru_idle(self, exclude: tuple[Slot, ...] = ()) -> list[Slot]:
        """Idle slots holding cells, least recently used first."""
        return sorted((s for s in self.slots if not s.busy and s.tokens and s not in exclude),
                      key=lambda s: s.last_used)

    def best_prefix(self, tokens: list[int], tag: str = "") -> tuple[Slot | None, int]:
        """The slot (busy or idle) of salt tag ``tag`` sharing the longest prefix with
        ``tokens``, and its length."""
        best: Slot | None = None
        n_best = 0
        for slot in self.slots:
            if slot.tag != tag:
                continue
            n = common_prefix(slot.tokens, tokens)
            if n > n_best:
                best, n_best = slot, n
        return best, n_best

    def append(self, slot: Slot, tokens: list[int]) -> None:
        """``tokens`` were just evaluated for ``slot`` (llama.cpp took one new cell each)."""
        slot.tokens.extend(tokens)
        slot.cells.extend(self.ledger.alloc(len(tokens)))
        slot.saved = False

    def truncate(self, slot: Slot, n: int) -> None:
        """Keep the first ``n`` tokens of ``slot``; drop the rest from the cache."""
        if n >= len(slot.tokens):
            return
        self.memory.seq_rm(slot.seq_id, n, -1)
        self.ledger.release(slot.cells[n:])
        del slot.tokens[n:], slot.cells[n:]
        slot.saved = False

    def clear(self, slot: Slot) -> None:
        self.memory.seq_rm(slot.seq_id, -1, -1)
        self.ledger.release(slot.cells)
        slot.tokens, slot.cells, slot.saved = [], [], False

    def copy_prefix(self, src: Slot, dst: Slot, n: int) -> None:
        """Make ``dst`` hold ``src``'s first ``n`` tokens, sharing their cells (no compute)."""
        self.clear(dst)
        if n <= 0:
            return
        self.memory.seq_cp(src.seq_id, dst.seq_id, 0, n)
        dst.tokens = src.tokens[:n]
        dst.cells = src.cells[:n]
        dst.tag = src.tag
        self.ledger.share(dst.cells)

    def restored(self, slot: Slot, tokens: list[int], tag: str = "") -> None:
        """``tokens`` (saved under salt tag ``tag``) were loaded into the (empty) ``slot``."""
        slot.tokens = list(tokens)
        slot.tag = tag
        slot.cells = self.ledger.alloc(len(tokens))
        slot.saved = True
