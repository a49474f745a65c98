"""Will a model fit this machine? Memory needed against memory free, for the Models page and the
first-run notice.

The estimate is the weights (the file size, plus 10% for compute buffers), the KV cache for the
context openwen loads with (``n_ctx``: about 30 KB per token for every GB of weights, which is
what Qwen3-8B's 36 layers of 8 KV heads take at 16 bits) and 300 MB for the program; rough, and
on the safe side.
"""

from __future__ import annotations

import os
from pathlib import Path

GB = 1_000_000_000
KV_BYTES_PER_TOKEN_PER_GB = 30_000


def memory_needed(file_size: int, n_ctx: int) -> int:
    """Bytes of RAM a model of ``file_size`` bytes needs when loaded with ``n_ctx`` tokens."""
    kv = int(file_size / GB * KV_BYTES_PER_TOKEN_PER_GB * n_ctx)
    return int(file_size * 1.1) + kv + 300_000_000


def memory_free(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """Bytes of memory available to a new program (Linux MemAvailable), else None."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_total(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def recommend(n_ctx: int, free: int | None = None) -> str | None:
    """The catalog name of the best current-generation Qwen model that fits in ``free`` bytes
    (default: this machine's available memory), None when none does."""
    from openwen.models import catalog

    free = memory_free() if free is None else free
    if free is None:
        return None
    fitting = [
        e for e in catalog.catalog().values()
        if e.name.startswith("qwen3.") and e.size and memory_needed(e.size, n_ctx) <= free
    ]
    if not fitting:
        return None
    return max(fitting, key=lambda e: e.size or 0).name


def first_run_notice(settings: object) -> str | None:
    """The one line ``openwen serve`` prints while only the bundled demo model is installed."""
    from openwen.models.store import ModelStore

    store = ModelStore(settings)  # type: ignore[arg-type]
    models = store.list()
    if not models or not all(m.bundled for m in models):
        return None
    if getattr(settings, "engine", "embedded") == "remote":
        return None
    pick = recommend(int(getattr(settings, "n_ctx", 8192)))
    offer = (f"get {pick}, the Qwen model that fits this machine, from the Models page or with "
             f"`openwen pull {pick}`") if pick else (
             "this machine has little free memory; see the Models page for small models")
    return ("openwen: only the tiny demo model (SmolLM2-135M) is installed; its answers are "
            f"weak. For real answers, {offer}.")
