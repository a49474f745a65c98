"""Will a model fit this machine: memory needed, free memory, the first-run recommendation and the
line `openwen serve` prints while only the demo model is installed."""

from __future__ import annotations

from pathlib import Path

from openwen.config import Settings
from openwen.models import catalog
from openwen.models.fit import (
    GB,
    first_run_notice,
    memory_free,
    memory_needed,
    memory_total,
    recommend,
)


def test_memory_needed_grows_with_size_and_context() -> None:
    small, big = memory_needed(1 * GB, 4096), memory_needed(5 * GB, 4096)
    assert 1 * GB < small < big
    assert memory_needed(5 * GB, 32768) > big
    # Qwen3-8B Q4_K_M at 8k context: about 5 GB of weights and 1.2 GB of KV cache
    assert 6.5 * GB < memory_needed(5_027_783_488, 8192) < 8 * GB


def test_free_memory_from_meminfo(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16000000 kB\nMemFree:  100 kB\n"
                       "MemAvailable:    8000000 kB\n")
    assert memory_free(meminfo) == 8_000_000 * 1024
    assert memory_total(meminfo) == 16_000_000 * 1024
    assert memory_free() is not None and memory_free() > 0  # this machine's


def test_recommend_picks_the_biggest_current_qwen_that_fits() -> None:
    entries = {e.name: e for e in catalog.catalog().values()}
    nine = memory_needed(entries["qwen3.5:9b"].size or 0, 8192)
    assert recommend(8192, free=nine) == "qwen3.5:9b"
    assert recommend(8192, free=nine - 1) == "qwen3.5:4b"
    assert recommend(8192, free=100 * GB) == "qwen3.6:35b-a3b"
    assert recommend(8192, free=GB // 2) is None  # not even the 0.8B


def test_serve_notice_only_while_the_demo_model_is_alone(store_settings: Settings,
                                                        make_gguf) -> None:
    notice = first_run_notice(store_settings)
    assert notice is not None and "demo model" in notice
    pick = recommend(store_settings.n_ctx)
    if pick:
        assert f"openwen pull {pick}" in notice
    make_gguf(store_settings.models_path / "acme" / "x-GGUF" / "x-Q4_K_M.gguf")
    assert first_run_notice(store_settings) is None
