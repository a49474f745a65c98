"""Fixtures of the security tests: a real ``openwen serve`` (see ``served.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from served import Served, serve


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``openwen serve`` on loopback (no keys required), server tools enabled by the admin."""
    yield from serve(tmp_path_factory.mktemp("attacked"), api_server_tools="true")
