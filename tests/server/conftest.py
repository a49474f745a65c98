"""Fixtures for the API tests.

One server with the real bundled model is shared by the whole session; tests that need other
settings (keys, a tiny queue, a remote upstream) start their own with ``running_server``.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
from serverkit import RunningServer, running_server, server_settings


@pytest.fixture(scope="session")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The shared server: the real bundled SmolLM2, n_ctx 2048, 2 threads, a fresh home."""
    settings = server_settings(tmp_path_factory.mktemp("api-home"))
    with running_server(settings) as server:
        yield server


@pytest.fixture
def client(api: RunningServer) -> openai.OpenAI:
    return api.client()


@pytest.fixture
def http(api: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, timeout=120) as session:
        yield session


