"""The ``openwen`` command, run as a user would (a real subprocess on the real bundled model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

OPENWEN = [sys.executable, "-m", "openwen"]


def run(*args: str, stdin: str | None = None, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OPENWEN, *args], input=stdin, capture_output=True, text=True,
                          env={**os.environ, "OPENWEN_N_CTX": "2048", **(env or {})}, timeout=240)


def test_version() -> None:
    result = run("version")
    assert result.returncode == 0
    assert result.stdout.startswith("openwen ")


def test_ask_json_on_the_bundled_model() -> None:
    result = run("ask", "--json", "--max-tokens", "8", "--seed", "1", "Say hello.")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["model"] == "smollm2"
    assert data["content"].strip()
    assert data["usage"]["completion_tokens"] <= 8
    assert data["finish_reason"] in ("stop", "length")


def test_ask_reads_piped_stdin_and_prints_plain_text() -> None:
    result = run("ask", "--max-tokens", "8", "Repeat this:", stdin="the quick brown fox")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "\x1b[" not in result.stdout  # no terminal escapes when piped


def test_unknown_model_lists_available_ones_without_traceback() -> None:
    result = run("ask", "--model", "no-such-model", "hi")
    assert result.returncode == 1
    assert "no-such-model" in result.stderr and "smollm2" in result.stderr
    assert "Traceback" not in result.stderr


def test_empty_message_is_a_clear_error() -> None:
    result = run("ask", "   ")
    assert result.returncode == 1
    assert "empty" in result.stderr
    assert "Traceback" not in result.stderr


def test_non_gguf_model_path_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"\x00" * 64)
    result = run("ask", "--model", str(bad), "hi")
    assert result.returncode == 1
    assert "GGUF" in result.stderr
    assert "Traceback" not in result.stderr


def test_over_long_prompt_states_both_lengths() -> None:
    result = run("ask", "--max-tokens", "4", "word " * 3000, env={"OPENWEN_N_CTX": "512"})
    assert result.returncode == 1
    assert "512" in result.stderr and "tokens" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_shows_sources(tmp_path: Path) -> None:
    result = run("config", "--json", env={"OPENWEN_PORT": "9999"})
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["port"] == {"value": "9999", "source": "env"}
    assert data["host"]["source"] == "default"


def test_config_never_prints_secrets() -> None:
    result = run("config", env={"OPENWEN_REMOTE_API_KEY": "sk-very-secret-value"})
    assert result.returncode == 0, result.stderr
    assert "sk-very-secret-value" not in result.stdout


@pytest.mark.parametrize("command", ["/help\n/think off\n/system be brief\n/reset\n/exit\n"])
def test_chat_commands_over_a_pipe(command: str) -> None:
    result = run("chat", stdin=command)
    assert result.returncode == 0, result.stderr
    assert "/reset" in result.stdout and "thinking: off" in result.stdout
    assert "system prompt set" in result.stdout


def test_chat_answers_and_keeps_history_over_a_pipe() -> None:
    result = run("chat", "--max-tokens", "24",
                 stdin="My name is Ada.\nWhat did I just tell you?\n",
                 env={"OPENWEN_N_CTX": "1024"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") >= 3


def test_ask_applies_the_bundled_models_profile() -> None:
    """``openwen ask`` answers under SmolLM2's built-in profile, as the web app does: its
    system prompt and greedy sampling (without a system prompt SmolLM2's template injects its
    own, under which this question got "La capital d'Albania ...")."""
    result = run("ask", "--json", "--max-tokens", "16", "What is the capital of France?")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert "paris" in data["content"].lower(), data["content"]
    again = json.loads(run("ask", "--json", "--max-tokens", "16",
                           "What is the capital of France?").stdout)
    assert again["content"] == data["content"]  # greedy: the same answer every time
