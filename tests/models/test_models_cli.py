"""`openwen models`, `pull` and `rm` through typer's CliRunner on a throwaway app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from openwen.cli import models_cmd


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    models_cmd.register(app)
    return app


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def cli_hub(hub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_gguf):
    """The hub stand-in with one small model, configured through the environment."""
    payload = make_gguf(tmp_path / "src.gguf", payload_floats=20_000, arch="qwen3").read_bytes()
    hub.add("acme/tiny-GGUF", {"tiny-Q4_K_M.gguf": payload})
    monkeypatch.setenv("OPENWEN_HUB_ENDPOINT", hub.url)
    monkeypatch.setenv("OPENWEN_MODELS_DIR", str(tmp_path / "models"))
    return hub


def test_models_json_lists_the_bundled_model(app: typer.Typer, runner: CliRunner) -> None:
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    models = {m["name"]: m for m in json.loads(result.stdout)}
    smollm2 = models["smollm2"]
    assert smollm2["bundled"] is True
    assert smollm2["metadata"]["quantization"] == "Q4_1"
    assert smollm2["metadata"]["architecture"] == "llama"
    assert smollm2["metadata"]["context_length"] == 8192


def test_models_table(app: typer.Typer, runner: CliRunner) -> None:
    result = runner.invoke(app, ["models"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for text in ("smollm2 (bundled)", "Q4_1", "llama", "8192", "quant", "lineage"):
        assert text in result.stdout


def test_models_catalog(app: typer.Typer, runner: CliRunner) -> None:
    result = runner.invoke(app, ["models", "--catalog", "--json"])
    assert result.exit_code == 0, result.output
    entries = {e["name"]: e for e in json.loads(result.stdout)}
    assert entries["qwen3:0.6b"]["repo"] == "Qwen/Qwen3-0.6B-GGUF"
    assert entries["qwen3:0.6b"]["pulled"] is False


def test_pull_list_rm(app: typer.Typer, runner: CliRunner, cli_hub, tmp_path: Path) -> None:
    pulled = runner.invoke(app, ["pull", "acme/tiny-GGUF"])
    assert pulled.exit_code == 0, pulled.output
    path = Path(pulled.stdout.strip().splitlines()[-1])
    assert path == tmp_path / "models" / "acme" / "tiny-GGUF" / "tiny-Q4_K_M.gguf"
    assert path.read_bytes() == cli_hub.repos["acme/tiny-GGUF"]["tiny-Q4_K_M.gguf"]
    assert "sha256 verified" in pulled.stderr

    listed = runner.invoke(app, ["models", "--json"])
    names = {m["name"]: m for m in json.loads(listed.stdout)}
    assert names["acme/tiny-GGUF"]["metadata"]["architecture"] == "qwen3"

    removed = runner.invoke(app, ["rm", "acme/tiny-GGUF"])
    assert removed.exit_code == 0, removed.output
    assert "removed acme/tiny-GGUF" in removed.stdout
    assert not path.exists()


def _one_line_error(result) -> str:
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ")
    return lines[-1]


def test_pull_error_is_one_line(app: typer.Typer, runner: CliRunner, cli_hub) -> None:
    line = _one_line_error(runner.invoke(app, ["pull", "acme/missing-GGUF"]))
    assert "not found" in line
    line = _one_line_error(runner.invoke(app, ["pull", "nonsense"]))
    assert "qwen3:0.6b" in line  # lists what can be pulled


def test_pull_checksum_error(app: typer.Typer, runner: CliRunner, cli_hub) -> None:
    cli_hub.serve_instead["tiny-Q4_K_M.gguf"] = b"GGUF" + b"\0" * 100
    line = _one_line_error(runner.invoke(app, ["pull", "acme/tiny-GGUF"]))
    assert "checksum mismatch" in line or "hub lists" in line


def test_rm_errors(app: typer.Typer, runner: CliRunner) -> None:
    assert "bundled" in _one_line_error(runner.invoke(app, ["rm", "smollm2"]))
    assert "not found" in _one_line_error(runner.invoke(app, ["rm", "nothing"]))
