"""The catalog of friendly names and pull-spec parsing."""

from __future__ import annotations

import pytest

from openwen.errors import ModelNotFoundError
from openwen.models import catalog
from openwen.models.pull import PullSpec, parse_spec

REQUIRED = [
    "qwen3:0.6b",
    "qwen3:1.7b",
    "qwen3:4b",
    "qwen3:8b",
    "qwen2.5:0.5b-instruct",
    "qwen2.5:1.5b-instruct",
    "qwen2.5:7b-instruct",
    "qwen2.5-coder:1.5b",
    "qwen2.5-coder:7b",
    "smollm2:135m",
]


def test_catalog_has_the_documented_names() -> None:
    assert set(REQUIRED) <= set(catalog.names())


@pytest.mark.parametrize("entry", list(catalog.catalog().values()), ids=lambda e: e.name)
def test_entries_are_well_formed(entry: catalog.CatalogEntry) -> None:
    owner, _, name = entry.repo.partition("/")
    assert owner and name and "/" not in name
    assert entry.file.endswith(".gguf") and "/" not in entry.file
    assert entry.quant is not None and entry.quant.lower() in entry.file.lower()
    assert entry.description


def test_qwen_entries_use_official_repos() -> None:
    for name in REQUIRED:
        if name.startswith("qwen"):
            assert catalog.catalog()[name].repo.startswith("Qwen/")


def test_lookup() -> None:
    entry = catalog.lookup("qwen3:0.6b")
    assert entry is not None
    assert (entry.repo, entry.file) == ("Qwen/Qwen3-0.6B-GGUF", "Qwen3-0.6B-Q8_0.gguf")
    assert catalog.lookup("  QWEN3:0.6B ") == entry
    assert catalog.lookup("qwen3:600b") is None


def test_find_by_file() -> None:
    entry = catalog.find_by_file("qwen/qwen3-4b-gguf", "QWEN3-4B-Q4_K_M.GGUF")
    assert entry is not None and entry.name == "qwen3:4b"
    assert catalog.find_by_file("Qwen/Qwen3-4B-GGUF", "Qwen3-4B-Q8_0.gguf") is None


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "qwen3:4b",
            PullSpec(
                "Qwen/Qwen3-4B-GGUF", "Qwen3-4B-Q4_K_M.gguf", "Q4_K_M", catalog_name="qwen3:4b"
            ),
        ),
        ("acme/model-GGUF", PullSpec("acme/model-GGUF")),
        ("acme/model-GGUF:model-Q8_0.gguf", PullSpec("acme/model-GGUF", "model-Q8_0.gguf")),
        ("acme/model-GGUF:Q5_K_M", PullSpec("acme/model-GGUF", quant="Q5_K_M")),
        ("acme/model-GGUF@v2:m.gguf", PullSpec("acme/model-GGUF", "m.gguf", revision="v2")),
        ("acme/model-GGUF/sub/m.gguf", PullSpec("acme/model-GGUF", "sub/m.gguf")),
        ("https://huggingface.co/acme/model-GGUF", PullSpec("acme/model-GGUF")),
        ("hf.co/acme/model-GGUF:Q4_K_M", PullSpec("acme/model-GGUF", quant="Q4_K_M")),
    ],
)
def test_parse_spec(spec: str, expected: PullSpec) -> None:
    assert parse_spec(spec) == expected


@pytest.mark.parametrize("spec", ["qwen9:1t", "just-a-word", "a/b/c"])
def test_parse_spec_rejects_unknown(spec: str) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        parse_spec(spec)
    assert "qwen3:0.6b" in info.value.available
