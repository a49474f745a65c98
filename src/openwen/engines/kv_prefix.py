"""The prefix cache: which slot a new request decodes in, and how much of its prompt is reused.

A request takes the slot (llama.cpp sequence) holding the longest common prefix with its prompt:

- the next turn of a conversation (or a regenerated answer) continues in that slot, which drops
  only the tokens after the common prefix;
- a request that merely shares a beginning with a cached conversation (the same system prompt, a
  fork of an old chat) gets a fresh slot and a copy of the shared prefix: the cells are shared
  (``llama_memory_seq_cp``), nothing is recomputed, and the old conversation stays cached;
- when a saved state on disk covers clearly more of the prompt than memory does, it is loaded.

Cells are a fixed budget. When a request or a step needs more, idle slots are evicted, least
recently used first; a long one is saved to disk first (``spill_min_tokens``), so the conversation
can come back without re-reading its history.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from openwen.engines.kv_disk import DiskEntry, DiskKVStore
from openwen.engines.kv_slots import KVMemory, Slot, SlotTable

log = logging.getLogger(__name__)

IN_PLACE_SLACK = 64  # a slot's tail this short (or a quarter of the match) may be dropped in place
DISK_MIN_GAIN = 32  # restore from disk only when it covers this many more tokens than memory


class StateFiles(KVMemory, Protocol):
    def save(self, seq: int, path: Path, tokens: Sequence[int]) -> int: ...

    def load(self, seq: int, path: Path, capacity: int) -> list[int] | None: ...


@dataclass(frozen=True)
class Lease:
    """A slot handed to a request; its first ``n_keep`` prompt tokens are already in the cache."""

    slot: Slot
    n_keep: int
    source: str  # "memory", "disk" or "none"


class PrefixCache:
    def __init__(self, table: SlotTable, memory: StateFiles, disk: DiskKVStore | None = None, *,
                 spill_min_tokens: int = 512, clock: Callable[[], float] = time.monotonic):
        self.table = table
        self.memory = memory
        self.disk = disk
        self.spill_min_tokens = spill_min_tokens
        self.clock = clock
        self.disk_loads = 0
        self.disk_saves = 0

    def acquire(self, tokens: list[int], reserve: int) -> Lease | None:
        """A slot for ``tokens`` with room for the rest of the prompt plus ``reserve`` cells, or
        ``None`` while no slot or too few cells are free (running requests hold them)."""
        if not self.table.idle():
            return None
        src, n_mem = self.table.best_prefix(tokens)
        entry = self._disk_hit(tokens, n_mem)
        if entry is not None:
            lease = self._from_disk(tokens, entry, reserve, avoid=src)
            if lease is not None:
                return lease
            src, n_mem = self.table.best_prefix(tokens)  # the attempt may have evicted slots
        return self._from_memory(tokens, src, n_mem, reserve)

    def release(self, slot: Slot, keep: int | None = None) -> None:
        """A request is done with ``slot``; keep its first ``keep`` tokens (all by default)."""
        if keep is not None:
            self.table.truncate(slot, keep)
        slot.busy = False
        slot.last_used = self.clock()

    def make_room(self, cells: int, protect: tuple[Slot, ...] = ()) -> bool:
        """Evict idle slots (LRU first) until ``cells`` cells are free; false if impossible."""
        while self.table.free_cells < cells:
            victims = self.table.lru_idle(exclude=protect)
            if not victims:
                return False
            self.evict(victims[0])
        return True

    def evict(self, slot: Slot) -> None:
        self.spill(slot)
        self.table.clear(slot)

    def spill(self, slot: Slot) -> None:
        """Save a long enough slot to disk unless it is there already."""
        if (self.disk is None or slot.saved or len(slot.tokens) < self.spill_min_tokens
                or self.disk.has(slot.tokens)):
            return
        path = self.disk.path_for(slot.tokens)
        started = time.perf_counter()
        if self.memory.save(slot.seq_id, path, slot.tokens):
            self.disk_saves += 1
            slot.saved = True
            self.disk.added(slot.tokens)
            log.debug("kv cache: saved %d tokens of slot %d in %.0f ms", len(slot.tokens),
                      slot.seq_id, (time.perf_counter() - started) * 1000)
        else:
            log.warning("kv cache: could not save slot %d to %s", slot.seq_id, path)

    def spill_all(self) -> None:
        for slot in self.table.slots:
            if not slot.busy and slot.tokens:
                self.spill(slot)

    # -- choosing ------------------------------------------------------------------------------

    def _disk_hit(self, tokens: list[int], n_mem: int) -> DiskEntry | None:
        if self.disk is None:
            return None
        entry = self.disk.find(tokens, longer_than=n_mem)
        # loading costs in proportion to the file's tokens, reading the prompt to the gained ones
        if entry is None or entry.match - n_mem < max(DISK_MIN_GAIN, entry.n_tokens // 64):
            return None
        return entry

    def _fresh(self, avoid: Slot | None) -> Slot:
        """An idle slot to overwrite: an empty one, else the least recently used."""
        idle = self.table.idle()
        empty = [s for s in idle if not s.tokens]
        if empty:
            return empty[0]
        others = [s for s in idle if s is not avoid] or idle
        return min(others, key=lambda s: s.last_used)

    def _from_disk(self, tokens: list[int], entry: DiskEntry, reserve: int,
                   avoid: Slot | None) -> Lease | None:
        dest = self._fresh(avoid)
        self.evict(dest)
        if not self.make_room(max(entry.n_tokens, len(tokens) + reserve), protect=(dest,)):
            return None
        loaded = self.memory.load(dest.seq_id, entry.path, entry.n_tokens)
        if loaded is None or loaded[: entry.match] != tokens[: entry.match]:
            log.warning("kv cache: %s did not load or does not match; dropping it", entry.path.name)
            self.table.clear(dest)
            if self.disk is not None:
                self.disk.discard(entry.path)
            return None
        self.disk_loads += 1
        self.table.restored(dest, loaded)
        if self.disk is not None:
            self.disk.touch(entry.path)
        n_keep = min(entry.match, len(tokens) - 1)
        self.table.truncate(dest, n_keep)
        dest.busy = True
        return Lease(dest, n_keep, "disk")

    def _from_memory(self, tokens: list[int], src: Slot | None, n_mem: int,
                     reserve: int) -> Lease | None:
        n_keep = min(n_mem, len(tokens) - 1)
        if src is not None and not src.busy and (
            len(src.tokens) - n_keep <= max(IN_PLACE_SLACK, n_keep // 4)
            or len(self.table.idle()) == 1
        ):
            dest = src
            self.table.truncate(dest, n_keep)
        else:
            dest = self._fresh(src)
            self.evict(dest)
            if src is not None and n_keep > 0:
                self.table.copy_prefix(src, dest, n_keep)
            else:
                n_keep = 0
        if not self.make_room(len(tokens) - n_keep + reserve, protect=(dest,)):
            return None
        dest.busy = True
        return Lease(dest, n_keep, "memory" if n_keep else "none")
