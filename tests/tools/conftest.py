"""Fixtures for tool tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tools_kit import LocalServer, serve_locally


@pytest.fixture
def local_server() -> Iterator[LocalServer]:
    with serve_locally() as server:
        yield server
