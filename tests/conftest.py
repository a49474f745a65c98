"""Shared fixtures: the real bundled model and isolated openwen settings."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from openwen.config import Settings, load_settings


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the real user's config or data."""
    for key in list(__import__("os").environ):
        if key.startswith("OPENWEN_") and key != "OPENWEN_TEST_POSTGRES_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("OPENWEN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(n_threads=2, n_ctx=2048).settings


@pytest.fixture(scope="session")
def bundled_model() -> Path:
    from openwen.models.store import bundled_model_path

    return bundled_model_path()


@pytest.fixture(scope="session")
def smollm2(bundled_model: Path) -> Iterator[object]:
    """One loaded SmolLM2 engine shared by the session (loading costs ~0.5 s)."""
    from openwen.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(bundled_model, name="smollm2", n_ctx=2048, n_threads=2)
    yield engine
    asyncio.run(engine.aclose())
