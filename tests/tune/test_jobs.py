"""Jobs and faults: what is refused before anything is queued, the queue (one job at a time),
cancel, and a training process killed mid-training. No half-written model is ever listed."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import gguf
import numpy as np
import pytest

from conftest import fact_jsonl, openwen
from openwen.config import Settings
from openwen.errors import ModelNotFoundError
from openwen.models.store import ModelStore
from openwen.tune.errors import DatasetError, TuneError
from openwen.tune.jobs import JobStore
from openwen.tune.service import create_job
from openwen.tune.train import TrainSettings

DATA = fact_jsonl().encode()


def _create(settings: Settings, name: str = "t1", base: str = "smollm2", data: bytes = DATA,
            **train: object) -> object:
    return create_job(settings, name=name, base=base, data=data, data_name="d.jsonl",
                      train=TrainSettings(**train))  # type: ignore[arg-type]


def _nothing_queued(settings: Settings) -> None:
    assert JobStore(settings).list() == []
    assert not (settings.home / "derivatives").exists()


def test_unknown_base_lists_the_models(settings: Settings) -> None:
    with pytest.raises(ModelNotFoundError) as err:
        _create(settings, base="no-such-model")
    assert "smollm2" in err.value.message
    _nothing_queued(settings)


def test_an_architecture_transformers_cannot_load_is_refused_listing_what_works(
        settings: Settings) -> None:
    path = settings.models_path / "tiny-bert.gguf"
    path.parent.mkdir(parents=True)
    w = gguf.GGUFWriter(str(path), arch="bert")
    w.add_context_length(128)
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(TuneError) as err:
        _create(settings, base="tiny-bert")
    msg = err.value.message
    assert "architecture 'bert' cannot be loaded for training" in msg
    assert "llama" in msg and "qwen2" in msg and "qwen3" in msg
    _nothing_queued(settings)


def test_too_little_disk_is_refused_first(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", tune_min_free_mb=10**9)
    with pytest.raises(TuneError, match="not enough free disk space"):
        _create(settings)
    _nothing_queued(settings)


@pytest.mark.parametrize(("kw", "words"), [
    ({"name": "Bad Name"}, "not a usable name"),
    ({"name": "smollm2"}, "a model named 'smollm2' already exists"),
    ({"epochs": 0}, "epochs must be at least 1"),
    ({"lr": 5.0}, "lr must be between 0 and 1"),
    ({"rank": 0}, "rank must be between 1 and 256"),
])
def test_bad_settings_are_refused(settings: Settings, kw: dict[str, object], words: str) -> None:
    with pytest.raises(TuneError, match=words):
        _create(settings, **kw)  # type: ignore[arg-type]
    _nothing_queued(settings)


def test_bad_data_is_refused_naming_the_line(settings: Settings) -> None:
    with pytest.raises(DatasetError, match="line 3: not valid JSON"):
        _create(settings, data=DATA.split(b"\n", 2)[0] + b"\n" + DATA.split(b"\n")[1]
                + b"\n{oops\n")
    with pytest.raises(DatasetError, match="has no examples"):
        _create(settings, data=b"\n")
    _nothing_queued(settings)


def test_cli_reports_a_malformed_line_and_queues_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    data = tmp_path / "bad.jsonl"
    data.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "a"}\n')
    out = openwen(home, "tune", "create", "--base", "smollm2", "--data", str(data), "--name",
                  "x")
    assert out.returncode == 1
    assert out.stderr.strip() == ("error: line 2: expected 'messages' (a chat), 'prompt' and "
                                  "'completion', or 'text'")
    assert "no training jobs yet" in openwen(home, "tune", "list").stdout
    missing = openwen(home, "tune", "show", "nope")
    assert missing.returncode == 1 and "no training job named 'nope'" in missing.stderr


def _wait(store: JobStore, name: str, until: object, timeout: float = 600) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = store.get(name).to_dict()
        if until(job):  # type: ignore[operator]
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {name} did not get there: {store.get(name).to_dict()}")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_queue_cancel_and_a_killed_training_process(settings: Settings) -> None:
    store = JobStore(settings)
    _create(settings, name="long", epochs=100)
    _create(settings, name="second")
    _create(settings, name="third")
    # past reading the data: loading torch and the base (killing it later, mid-step, is the same
    # to the job store: a running job whose process is gone)
    running = _wait(store, "long", lambda j: j["state"] == "running"
                    and j.get("phase") not in (None, "preparing"))
    # one job at a time: the others wait in the queue
    assert store.get("second").state == "queued" and store.get("third").state == "queued"
    assert store.cancel("second").state in ("queued", "cancelled")  # the runner will skip it
    pid = int(running["pid"])  # type: ignore[arg-type]
    os.kill(pid, signal.SIGKILL)  # the training process dies mid-training
    gone = _wait(store, "long", lambda j: j["state"] != "running", timeout=30)
    assert gone["state"] == "interrupted"
    assert "stopped before the job finished" in str(gone["error"])
    assert not (store.jobs_dir / "long" / "work").exists()  # the partial output is gone
    names = ModelStore(settings).names()
    assert "long" not in names and "second" not in names
    # the queue goes on: a waiting runner takes the lock, skips the cancelled job
    third = _wait(store, "third", lambda j: j["state"] == "running")
    assert store.get("second").state == "cancelled"
    store.cancel("third")
    cancelled = _wait(store, "third", lambda j: j["state"] == "cancelled", timeout=600)
    assert cancelled["state"] == "cancelled" and third["state"] == "running"
    assert "third" not in ModelStore(settings).names()
    assert not (settings.home / "derivatives" / "third").exists()
    with pytest.raises(TuneError, match="already cancelled"):
        store.cancel("third")
    store.remove("third")
    assert "third" not in store.names()
    statuses = [json.loads((p / "status.json").read_text())["state"]
                for p in store.jobs_dir.iterdir() if p.is_dir()]
    assert sorted(statuses) == ["cancelled", "interrupted"]
