"""The prefix cache: which sequence a request decodes in, and how much of its prompt is reused.

Live cache. ``kv_slots`` llama.cpp sequences share one KV cache. A request takes the sequence
holding the longest common prefix with its prompt:

- the next turn of a conversation (or a regenerated answer) continues in that sequence, which
  drops only the tokens after the common prefix;
- a request that merely shares a beginning with another sequence (the same system prompt, a fork of
  an old chat) gets a free sequence and a copy of the shared prefix: the cells are shared
  (``llama_memory_seq_cp``), nothing is recomputed, and the other sequence keeps its tokens.

Saved states. Idle sequences do not stay in the live cache while others run: every decoded token
scans every cell of it (masked out, but scanned), so 6,000 idle cells made a short chat's decoding
about 1.8x slower here. When a request is admitted, idle sequences are copied out to the
:class:`~openwen.engines.kv_store.KVStore` (RAM, then disk) and their cells freed; a later request
whose prompt they cover clearly better than the live cache is loaded back from there.

Salts. A request carries the salt tag of its ``cache_salt``; only slots and saved states of the
same tag are matched, so a prefix cached for one user never serves (or shows up as
``cached_tokens`` for) another. A slot taken over for another tag starts empty.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from openwen.engines.kv_slots import KVMemory, Slot, SlotTable
from openwen.engines.kv_store import Hit, KVStore

log = logging.getLogger(__name__)

IN_PLACE_SLACK = 64  # a sequence's tail this short (or a quarter of the match) may be dropped
STORE_MIN_GAIN = 32  # load a saved state only when it covers this many more tokens than memory


class StateIO(KVMemory, Protocol):
    def state_get(self, seq: int) -> Any | None: ...

    def state_set(self, seq: int, data: Any) -> bool: ...


@dataclass(frozen=True)
class Lease:
    """A slot handed to a request; its first ``n_keep`` prompt tokens are already in the cache."""

    slot: Slot
    n_keep: int
    source: str  # "memory", "saved" or "none"


class PrefixCache:
    def __init__(self, table: SlotTable, memory: StateIO, store: KVStore, *,
                 clock: Callable[[], float] = time.monotonic):
        self.table = table
        self.memory = memory
        self.store = store
        self.clock = clock
        self.loads = 0  # saved states loaded back
        self.offloads = 0  # idle sequences copied out

    def acquire(self, tokens: list[int], reserve: int, tag: str = "") -> Lease | None:
        """A slot for ``tokens`` (salt tag ``tag``) with room for the rest of the prompt plus
        ``reserve`` cells, or ``None`` while no slot or too few cells are free (running requests
        hold them)."""
        if not self.table.idle():
            return None
        src, n_mem = self.table.best_prefix(tokens, tag)
        hit = self._store_hit(tokens, n_mem, tag)
        if hit is not None:
            lease = self._from_store(tokens, hit, reserve, avoid=src)
            if lease is not None:
                return lease
            src, n_mem = self.table.best_prefix(tokens, tag)  # the attempt may have evicted
        return self._from_memory(tokens, src, n_mem, reserve, tag)

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
        """Free a slot's cells, keeping its state in the store if the store takes it."""
        if slot.tokens and not slot.saved and self.store.accepts:
            data = self.memory.state_get(slot.seq_id)
            if data is not None:
                self.store.put(slot.tokens, data, slot.tag)
                self.offloads += 1
        self.table.clear(slot)

    def offload_idle(self) -> None:
        """Move every idle sequence out of the live cache (into the store, if it takes them)."""
        if not self.store.accepts:
            return
        for slot in self.table.lru_idle():
            self.evict(slot)

    def save_all(self) -> None:
        """At shutdown: idle sequences and the RAM tier go to disk where they qualify."""
        for slot in self.table.lru_idle():
            self.evict(slot)
        self.store.flush()

    # -- choosing ------------------------------------------------------------------------------

    def _store_hit(self, tokens: list[int], n_mem: int, tag: str) -> Hit | None:
        hit = self.store.find(tokens, longer_than=n_mem, tag=tag)
        # loading costs in proportion to the saved tokens, reading the prompt to the gained ones
        if hit is None or hit.match - n_mem < max(STORE_MIN_GAIN, len(hit.state.tokens) // 64):
            return None
        return hit

    def _fresh(self, avoid: Slot | None) -> Slot:
        """An idle slot to overwrite: an empty one, else the least recently used."""
        idle = self.table.idle()
        empty = [s for s in idle if not s.tokens]
        if empty:
            return empty[0]
        others = [s for s in idle if s is not avoid] or idle
        return min(others, key=lambda s: s.last_used)

    def _from_store(self, tokens: list[int], hit: Hit, reserve: int,
                    avoid: Slot | None) -> Lease | None:
        saved = hit.state.tokens
        dest = self._fresh(avoid)
        self.evict(dest)
        if not self.make_room(max(len(saved), len(tokens) + reserve), protect=(dest,)):
            return None
        data = self.store.read(hit.state)
        if data is None or not self.memory.state_set(dest.seq_id, data):
            log.warning("kv cache: a saved state of %d tokens did not load; dropping it",
                        len(saved))
            self.store.discard(hit.state)
            return None
        self.loads += 1
        self.table.restored(dest, saved, hit.state.tag)
        n_keep = min(hit.match, len(tokens) - 1)
        self.table.truncate(dest, n_keep)
        dest.busy = True
        return Lease(dest, n_keep, "saved")

    def _from_memory(self, tokens: list[int], src: Slot | None, n_mem: int,
                     reserve: int, tag: str) -> Lease | None:
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
        dest.tag = tag  # evicted above unless it holds this tag's prefix
        if not self.make_room(len(tokens) - n_keep + reserve, protect=(dest,)):
            return None
        dest.busy = True
        return Lease(dest, n_keep, "memory" if n_keep else "none")
