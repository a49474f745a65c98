"""Pulling from a real HTTP hub stand-in on 127.0.0.1: complete, resumed and corrupted downloads."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import pytest

from openwen.config import Settings, load_settings
from openwen.errors import DownloadError
from openwen.models.pull import PullProgress, choose_file, parse_spec, pull
from openwen.models.store import ModelStore

REPO = "acme/tiny-GGUF"
FILE = "tiny-Q4_K_M.gguf"


@pytest.fixture
def payload(tmp_path: Path, make_gguf) -> bytes:
    """A real GGUF file of ~320 KB."""
    return make_gguf(tmp_path / "src" / FILE, payload_floats=80_000, seed=7).read_bytes()


def _pull(spec: str, settings: Settings, **kwargs):
    kwargs.setdefault("retry_delay", 0)
    return pull(spec, settings, **kwargs)


def test_complete_download(hub, hub_settings: Settings, payload: bytes) -> None:
    hub.add(REPO, {FILE: payload, "README.md": b"# tiny"})
    events: list[PullProgress] = []
    result = _pull(f"{REPO}:{FILE}", hub_settings, progress=events.append)
    expected = hub_settings.models_path / "acme" / "tiny-GGUF" / FILE
    assert result.path == expected and result.files == (expected,)
    assert expected.read_bytes() == payload
    assert result.verified and result.downloaded == len(payload)
    assert not expected.with_name(FILE + ".part").exists()
    assert events[0].status == "start" and events[-1].status == "done"
    assert any(e.status == "verify" for e in events)
    assert events[-1].completed == events[-1].total == len(payload)
    assert ModelStore(hub_settings).resolve(REPO).path == expected
    assert "range" not in hub.gets(FILE)[0].headers


def test_interrupted_download_resumes(hub, hub_settings: Settings, payload: bytes) -> None:
    hub.add(REPO, {FILE: payload})
    hub.cut_after[FILE] = 100_000
    result = _pull(REPO, hub_settings)
    gets = hub.gets(FILE)
    assert len(gets) == 2
    assert "range" not in gets[0].headers
    assert gets[1].headers["range"] == "bytes=100000-"
    data = result.path.read_bytes()
    assert data == payload
    assert hashlib.sha256(data).hexdigest() == hashlib.sha256(payload).hexdigest()


def test_interrupted_pull_resumes_on_the_next_run(
    hub, hub_settings: Settings, payload: bytes
) -> None:
    hub.add(REPO, {FILE: payload})
    hub.cut_after[FILE] = 65_536
    with pytest.raises(DownloadError, match="run pull again to resume"):
        _pull(REPO, hub_settings, retries=0)
    dest = hub_settings.models_path / "acme" / "tiny-GGUF" / FILE
    part = dest.with_name(FILE + ".part")
    assert not dest.exists()
    assert part.read_bytes() == payload[:65_536]
    result = _pull(REPO, hub_settings, retries=0)
    assert hub.gets(FILE)[-1].headers["range"] == "bytes=65536-"
    assert result.path.read_bytes() == payload and not part.exists()


def test_server_ignoring_range_restarts_cleanly(
    hub, hub_settings: Settings, payload: bytes
) -> None:
    hub.add(REPO, {FILE: payload})
    hub.cut_after[FILE] = 50_000
    hub.ignore_range = True
    result = _pull(REPO, hub_settings)
    assert hub.gets(FILE)[1].headers["range"] == "bytes=50000-"  # asked, got a 200 instead
    assert result.path.read_bytes() == payload


def test_corrupted_download_is_rejected_and_removed(
    hub, hub_settings: Settings, payload: bytes
) -> None:
    wrong = bytearray(payload)
    wrong[len(wrong) // 2] ^= 0xFF
    hub.add(REPO, {FILE: payload})
    hub.serve_instead[FILE] = bytes(wrong)
    with pytest.raises(DownloadError, match="checksum mismatch"):
        _pull(REPO, hub_settings)
    folder = hub_settings.models_path / "acme" / "tiny-GGUF"
    assert not (folder / FILE).exists()
    assert not (folder / (FILE + ".part")).exists()


def test_checksum_from_linked_etag_when_listing_has_none(
    hub, hub_settings: Settings, payload: bytes
) -> None:
    hub.add(REPO, {FILE: payload})
    hub.publish_sha = False
    hub.serve_instead[FILE] = payload[:-1] + bytes([payload[-1] ^ 1])
    with pytest.raises(DownloadError, match="checksum mismatch"):
        _pull(REPO, hub_settings)
    assert any(r.method == "HEAD" for r in hub.requests)
    hub.serve_instead.clear()
    assert _pull(REPO, hub_settings).verified


def test_siblings_listing_when_tree_api_is_missing(
    hub, hub_settings: Settings, payload: bytes
) -> None:
    hub.add(REPO, {FILE: payload})
    hub.tree_api = False
    result = _pull(REPO, hub_settings)
    assert result.path.read_bytes() == payload and result.verified


def test_not_gguf_is_rejected(hub, hub_settings: Settings) -> None:
    hub.add(REPO, {FILE: b"<html>this is a login page</html>" * 100})
    with pytest.raises(DownloadError, match="not a usable GGUF"):
        _pull(REPO, hub_settings)
    assert not (hub_settings.models_path / "acme" / "tiny-GGUF" / FILE).exists()


def test_catalog_name(hub, hub_settings: Settings, payload: bytes) -> None:
    hub.add("Qwen/Qwen3-0.6B-GGUF", {"Qwen3-0.6B-Q8_0.gguf": payload})
    result = _pull("qwen3:0.6b", hub_settings)
    assert result.path.name == "Qwen3-0.6B-Q8_0.gguf"
    assert ModelStore(hub_settings).resolve("qwen3:0.6b").path == result.path


def test_already_present_is_skipped(hub, hub_settings: Settings, payload: bytes) -> None:
    hub.add(REPO, {FILE: payload})
    _pull(REPO, hub_settings)
    events: list[PullProgress] = []
    again = _pull(REPO, hub_settings, progress=events.append)
    assert again.downloaded == 0 and [e.status for e in events] == ["skip"]
    assert len(hub.gets(FILE)) == 1


def test_split_model(hub, hub_settings: Settings, tmp_path: Path, make_gguf) -> None:
    parts = {
        f"big-q4_k_m-{i:05d}-of-00002.gguf": make_gguf(tmp_path / f"p{i}.gguf", seed=i).read_bytes()
        for i in (1, 2)
    }
    hub.add("acme/big-GGUF", {**parts, "big-q8_0.gguf": b"x"})
    result = _pull("acme/big-GGUF", hub_settings)
    assert [p.name for p in result.files] == sorted(parts)
    assert all(p.read_bytes() == parts[p.name] for p in result.files)
    model = ModelStore(hub_settings).resolve("acme/big-GGUF")
    assert model.files == result.files


def test_choose_file() -> None:
    files = ["README.md", "m-Q8_0.gguf", "m-Q4_K_M.gguf", "m-Q4_K_S.gguf", "mmproj-m-f16.gguf"]
    assert choose_file(parse_spec("a/m"), files) == "m-Q4_K_M.gguf"
    assert choose_file(parse_spec("a/m:q8_0"), files) == "m-Q8_0.gguf"
    assert choose_file(parse_spec("a/m"), ["README.md", "only.gguf"]) == "only.gguf"
    with pytest.raises(DownloadError, match="several GGUF files") as info:
        choose_file(parse_spec("a/m"), ["m-Q8_0.gguf", "m-Q6_K.gguf"])
    assert "m-Q6_K.gguf" in info.value.message
    with pytest.raises(DownloadError, match="has no Q2_K"):
        choose_file(parse_spec("a/m:Q2_K"), files)
    with pytest.raises(DownloadError, match="no file 'x.gguf'"):
        choose_file(parse_spec("a/m:x.gguf"), files)


def test_several_files_without_q4_k_m(hub, hub_settings: Settings, payload: bytes) -> None:
    hub.add(REPO, {"tiny-Q8_0.gguf": payload, "tiny-F16.gguf": payload})
    with pytest.raises(DownloadError, match="tiny-F16.gguf, tiny-Q8_0.gguf"):
        _pull(REPO, hub_settings)


def test_unknown_repo_and_file(hub, hub_settings: Settings, payload: bytes) -> None:
    with pytest.raises(DownloadError, match="not found"):
        _pull("acme/missing-GGUF", hub_settings)
    hub.add(REPO, {FILE: payload})
    with pytest.raises(DownloadError, match="no file 'other.gguf'"):
        _pull(f"{REPO}:other.gguf", hub_settings)


def test_token_is_sent_and_required(hub, tmp_path: Path, payload: bytes) -> None:
    hub.add(REPO, {FILE: payload})
    hub.token = "hf_secret"
    no_token = load_settings(models_dir=str(tmp_path / "m1"), hub_endpoint=hub.url).settings
    with pytest.raises(DownloadError, match="OPENWEN_HUB_TOKEN") as info:
        _pull(REPO, no_token)
    assert "401" in info.value.message
    bad = load_settings(
        models_dir=str(tmp_path / "m2"), hub_endpoint=hub.url, hub_token="wrong"
    ).settings
    with pytest.raises(DownloadError, match="token was rejected"):
        _pull(REPO, bad)
    good = load_settings(
        models_dir=str(tmp_path / "m3"), hub_endpoint=hub.url, hub_token="hf_secret"
    ).settings
    assert _pull(REPO, good).path.read_bytes() == payload
    assert hub.gets(FILE)[-1].headers["authorization"] == "Bearer hf_secret"


def test_unreachable_hub(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = load_settings(
        models_dir=str(tmp_path / "m"), hub_endpoint=f"http://127.0.0.1:{port}"
    ).settings
    with pytest.raises(DownloadError, match="cannot reach the model hub"):
        _pull(REPO, settings)


def test_unsafe_file_names_are_refused(hub, hub_settings: Settings, payload: bytes) -> None:
    hub.add(REPO, {"../../escape-Q4_K_M.gguf": payload})
    with pytest.raises(DownloadError, match="unsafe name"):
        _pull(REPO, hub_settings)
    assert not (hub_settings.models_path.parent / "escape-Q4_K_M.gguf").exists()


def test_complete_answer_of_the_wrong_size_is_not_retried(
    hub, hub_settings: Settings, payload: bytes
) -> None:
    hub.add(REPO, {FILE: payload})
    hub.serve_instead[FILE] = payload[: len(payload) // 2]
    with pytest.raises(DownloadError, match=f"the hub lists {len(payload)}"):
        _pull(REPO, hub_settings)
    assert len(hub.gets(FILE)) == 1
    assert not (hub_settings.models_path / "acme" / "tiny-GGUF" / (FILE + ".part")).exists()


def test_not_enough_disk_space(hub, hub_settings: Settings, payload: bytes) -> None:
    hub.add(REPO, {FILE: payload})
    hub.listed_size[FILE] = 10**18  # an exabyte
    with pytest.raises(DownloadError, match="not enough disk space"):
        _pull(REPO, hub_settings)
    assert hub.gets(FILE) == []
