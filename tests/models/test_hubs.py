"""Every hub layout openwen pulls from, against a stand-in server on 127.0.0.1 that follows it:
Hugging Face, a Hugging Face mirror below a path, and ModelScope. Each gets a complete, an
interrupted-and-resumed and a corrupt download; then the background downloads the web app uses
(progress, cancel and resume, the error codes the page translates)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from openwen.config import Settings, load_settings
from openwen.errors import DownloadError, ModelNotFoundError
from openwen.models.downloads import Downloads, Job
from openwen.models.pull import ModelScopeClient, hub_client, pull
from openwen.models.store import ModelStore

REPO = "Qwen/tiny-GGUF"
FILE = "tiny-Q4_K_M.gguf"
HUBS = ["huggingface", "mirror", "modelscope"]


@pytest.fixture
def payload(tmp_path: Path, make_gguf) -> bytes:
    return make_gguf(tmp_path / "src" / FILE, payload_floats=80_000, seed=3).read_bytes()


def settings_for(kind: str, hub, tmp_path: Path) -> Settings:
    if kind == "mirror":
        hub.prefix = "/hf-mirror"
        endpoint = hub.url + "/hf-mirror"
    else:
        endpoint = hub.url
    layout = "modelscope" if kind == "modelscope" else "huggingface"
    return load_settings(models_dir=str(tmp_path / "models"), hub_endpoint=endpoint,
                         hub=layout).settings


def file_gets(hub, kind: str) -> list:
    gets = hub.gets(FILE)
    if kind == "modelscope":  # the bytes come from /api/v1/models/{repo}/repo?FilePath=...
        assert all(r.path == f"/api/v1/models/{REPO}/repo" for r in gets)
        assert all(r.query["Revision"] == "master" for r in gets)
    elif kind == "mirror":
        assert all(r.path.startswith("/hf-mirror/") for r in gets)
    return gets


@pytest.mark.parametrize("kind", HUBS)
def test_complete(kind: str, hub, tmp_path: Path, payload: bytes) -> None:
    hub.add(REPO, {FILE: payload, "README.md": b"# tiny"})
    settings = settings_for(kind, hub, tmp_path)
    result = pull(REPO, settings, retry_delay=0)
    assert result.path.read_bytes() == payload and result.verified
    assert len(file_gets(hub, kind)) == 1
    assert ModelStore(settings).resolve(REPO).path == result.path


@pytest.mark.parametrize("kind", HUBS)
def test_interrupted_and_resumed(kind: str, hub, tmp_path: Path, payload: bytes) -> None:
    hub.add(REPO, {FILE: payload})
    hub.cut_after[FILE] = 90_000
    settings = settings_for(kind, hub, tmp_path)
    with pytest.raises(DownloadError, match="resume"):
        pull(REPO, settings, retries=0, retry_delay=0)
    part = settings.models_path / "Qwen" / "tiny-GGUF" / (FILE + ".part")
    assert part.read_bytes() == payload[:90_000]
    result = pull(REPO, settings, retries=0, retry_delay=0)
    gets = file_gets(hub, kind)
    assert gets[-1].headers["range"] == "bytes=90000-"
    assert result.path.read_bytes() == payload and not part.exists()


@pytest.mark.parametrize("kind", HUBS)
def test_corrupt(kind: str, hub, tmp_path: Path, payload: bytes) -> None:
    wrong = bytearray(payload)
    wrong[1000] ^= 0xFF
    hub.add(REPO, {FILE: payload})
    hub.serve_instead[FILE] = bytes(wrong)
    settings = settings_for(kind, hub, tmp_path)
    with pytest.raises(DownloadError, match="checksum mismatch"):
        pull(REPO, settings, retry_delay=0)
    folder = settings.models_path / "Qwen" / "tiny-GGUF"
    assert not (folder / FILE).exists() and not (folder / (FILE + ".part")).exists()


@pytest.mark.parametrize("kind", HUBS)
def test_missing_repository(kind: str, hub, tmp_path: Path) -> None:
    settings = settings_for(kind, hub, tmp_path)
    with pytest.raises(DownloadError, match="not found"):
        pull("Qwen/nothing-GGUF", settings, retry_delay=0)


def test_modelscope_default_endpoint() -> None:
    settings = load_settings(hub="modelscope").settings
    with hub_client(settings) as client:
        assert isinstance(client, ModelScopeClient)
        assert client.endpoint == "https://modelscope.cn"
        url = client.file_url("Qwen/Qwen3-8B-GGUF", "Qwen3-8B-Q4_K_M.gguf")
    assert url == ("https://modelscope.cn/api/v1/models/Qwen/Qwen3-8B-GGUF/repo?"
                   "Revision=master&FilePath=Qwen3-8B-Q4_K_M.gguf")


def test_bad_hub_setting_is_refused() -> None:
    from openwen.errors import ConfigError

    with pytest.raises(ConfigError):
        load_settings(hub="gitee")


# -- background downloads ------------------------------------------------------------------------


def wait_for(job: Job, timeout: float = 60.0) -> Job:
    end = time.monotonic() + timeout
    while job.active:
        assert time.monotonic() < end, f"download did not finish: {job}"
        time.sleep(0.05)
    return job


def test_background_download_reports_progress(hub, hub_settings: Settings,
                                              payload: bytes) -> None:
    hub.add(REPO, {FILE: payload})
    finished: list[Job] = []
    downloads = Downloads(hub_settings, on_done=finished.append, pull_kwargs={"retry_delay": 0})
    job = downloads.start(REPO)
    assert downloads.start(REPO) is job  # the same model is not downloaded twice at once
    wait_for(job)
    assert job.state == "done" and job.model == REPO and finished == [job]
    assert job.completed == job.total == len(payload)
    data = job.to_dict()
    assert data["file"] == FILE and data["eta"] is None and data["error"] is None


def test_cancel_then_resume(hub, hub_settings: Settings, make_gguf, tmp_path: Path) -> None:
    big = make_gguf(tmp_path / "big.gguf", payload_floats=2_000_000).read_bytes()  # ~8 MB
    hub.add(REPO, {FILE: big})
    hub.throttle = 0.01  # seconds per 64 KiB: the download takes a few seconds
    downloads = Downloads(hub_settings, pull_kwargs={"retry_delay": 0})
    job = downloads.start(REPO)
    end = time.monotonic() + 30
    while job.completed < 2 << 20:
        assert time.monotonic() < end and job.active, job
        time.sleep(0.02)
    assert job.speed > 0 and job.eta is not None
    downloads.cancel(job.id)
    wait_for(job)
    assert job.state == "cancelled"
    part = hub_settings.models_path / "Qwen" / "tiny-GGUF" / (FILE + ".part")
    kept = part.stat().st_size
    assert kept >= 2 << 20
    hub.throttle = 0
    again = downloads.start(REPO)
    assert again.id != job.id
    wait_for(again)
    assert again.state == "done"
    assert hub.gets(FILE)[-1].headers["range"].startswith("bytes=")
    assert int(hub.gets(FILE)[-1].headers["range"][6:-1]) >= kept
    assert (part.parent / FILE).read_bytes() == big


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        ("no_network", "no_network"),
        ("not_found", "not_found"),
        ("disk_full", "disk_full"),
        ("corrupt", "corrupt"),
    ],
)
def test_errors_have_codes(setup: str, code: str, hub, tmp_path: Path, payload: bytes) -> None:
    hub.add(REPO, {FILE: payload})
    endpoint = hub.url
    spec = REPO
    if setup == "no_network":
        endpoint = "http://127.0.0.1:9"  # the discard port: nothing listens
    elif setup == "not_found":
        spec = "Qwen/missing-GGUF"
    elif setup == "disk_full":
        hub.listed_size[FILE] = 1 << 60  # the listing says it is bigger than any disk
    else:
        hub.serve_instead[FILE] = payload[:-1] + bytes([payload[-1] ^ 1])
    settings = load_settings(models_dir=str(tmp_path / "models"), hub_endpoint=endpoint).settings
    downloads = Downloads(settings, pull_kwargs={"retry_delay": 0, "retries": 0})
    job = wait_for(downloads.start(spec))
    assert job.state == "error" and job.error_code == code, job.error
    if setup == "disk_full":  # refused before a single byte was fetched
        assert hub.gets(FILE) == []


def test_bad_spec_fails_before_starting(hub_settings: Settings) -> None:
    with pytest.raises(ModelNotFoundError):
        Downloads(hub_settings).start("not a model")
