"""Fixtures for the model store tests.

- ``make_gguf``: writes small but real GGUF files with ``gguf.GGUFWriter`` (chosen metadata, a few
  tensors of random data).
- ``hub``: a Hugging Face hub stand-in (``http.server`` in a thread on 127.0.0.1) serving
  ``/api/models/{repo}/tree/main``, ``/api/models/{repo}`` and ``/{repo}/resolve/main/{file}`` with
  Range support, and able to cut a download after N bytes, ignore Range, serve wrong bytes or demand
  a token. It records every request. The same server also answers as a Hugging Face mirror under a
  path prefix (``Hub.prefix``, e.g. ``/hf-mirror``, like mirrors that live below a path) and in
  ModelScope's layout: ``/api/v1/models/{repo}/repo/files?Revision=master&Recursive=true``
  (``{"Code": 200, "Data": {"Files": [{"Path", "Name", "Size", "Sha256", "Type": "blob"}]}}``) and
  ``/api/v1/models/{repo}/repo?Revision=master&FilePath={file}`` for the bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hub_standin import Hub, serving, write_gguf

from openwen.config import Settings, load_settings

MakeGGUF = Callable[..., Path]


@pytest.fixture
def make_gguf() -> MakeGGUF:
    return write_gguf


@pytest.fixture
def store_settings(tmp_path: Path) -> Settings:
    return load_settings(models_dir=str(tmp_path / "models")).settings


@pytest.fixture
def hub() -> Iterator[Hub]:
    with serving() as state:
        yield state


@pytest.fixture
def hub_settings(hub: Hub, tmp_path: Path) -> Settings:
    return load_settings(models_dir=str(tmp_path / "models"), hub_endpoint=hub.url).settings
