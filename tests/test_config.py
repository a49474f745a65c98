"""Settings precedence: environment beats the config file beats defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from openwen.config import config_file_path, load_settings
from openwen.errors import ConfigError


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config" / "openwen" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_when_nothing_is_set(tmp_path: Path) -> None:
    loaded = load_settings()
    assert loaded.settings.port == 8800
    assert loaded.settings.host == "127.0.0.1"
    assert loaded.sources["port"] == "default"
    assert loaded.settings.home == tmp_path / "home"  # OPENWEN_HOME from the autouse fixture
    assert loaded.settings.models_path == tmp_path / "home" / "models"


def test_file_beats_default_and_env_beats_file(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(tmp_path, 'port = 9000\nmodel = "qwen3:0.6b"\n[remote]\nbase_url = "http://x/v1"\n')
    loaded = load_settings()
    assert loaded.settings.port == 9000 and loaded.sources["port"] == "file"
    assert loaded.settings.remote_base_url == "http://x/v1"
    monkeypatch.setenv("OPENWEN_PORT", "9100")
    loaded = load_settings()
    assert loaded.settings.port == 9100 and loaded.sources["port"] == "env"
    assert loaded.settings.model == "qwen3:0.6b" and loaded.sources["model"] == "file"


def test_openwen_config_points_at_another_file(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "elsewhere.toml"
    other.write_text("n_ctx = 4096\n")
    monkeypatch.setenv("OPENWEN_CONFIG", str(other))
    assert config_file_path() == other
    assert load_settings().settings.n_ctx == 4096


def test_xdg_data_home_when_no_openwen_home(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENWEN_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert load_settings().settings.home == tmp_path / "data" / "openwen"


@pytest.mark.parametrize(
    ("text", "needle"),
    [("port = ", "not valid TOML"), ("colour = 1", "unknown setting"), ("port = 'abc'", "port")],
)
def test_bad_config_file_is_a_clear_error(tmp_path: Path, text: str, needle: str) -> None:
    write_config(tmp_path, text)
    with pytest.raises(ConfigError, match=needle):
        load_settings()


def test_bad_env_value_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENWEN_N_CTX", "lots")
    with pytest.raises(ConfigError, match="n_ctx"):
        load_settings()
