"""Plain CPU buffers where llama.cpp's AMX buffers crash (openwen.engines.llama_buffers)."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from openwen.engines import llama_buffers


def fake_llama(info: bytes) -> SimpleNamespace:
    return SimpleNamespace(llama_print_system_info=lambda: info)


@pytest.mark.parametrize(("info", "env", "wanted"), [
    (b"CPU : AVX2 = 1 | AMX_INT8 = 1 | REPACK = 1 |", None, False),
    (b"CPU : AVX2 = 1 | REPACK = 1 |", None, True),
    (b"CPU : AMX_INT8 = 1 |", "true", True),
    (b"CPU : AVX2 = 1 |", "off", False),
    (b"CPU : AMX_INT8 = 1 |", "maybe", False),  # not a yes or a no: the CPU decides
])
def test_the_cpu_decides_unless_told(monkeypatch: pytest.MonkeyPatch, info: bytes,
                                     env: str | None, wanted: bool) -> None:
    if env is None:
        monkeypatch.delenv(llama_buffers.ENV, raising=False)
    else:
        monkeypatch.setenv(llama_buffers.ENV, env)
    assert llama_buffers.extra_buffers_wanted(fake_llama(info)) is wanted


def test_models_open_without_extra_buffers_when_turned_off() -> None:
    """In a fresh process told to, every default model parameter set asks for plain buffers,
    and the bundled model decodes a multi-token batch (what crashed on an AMX CPU)."""
    code = (
        "from openwen.engines.llama_buffers import llama_cpp_module\n"
        "from openwen.models.store import bundled_model_path\n"
        "llama_cpp = llama_cpp_module()\n"
        "assert llama_cpp.llama_model_default_params().use_extra_bufts is False\n"
        "assert llama_cpp.llama_cpp.llama_model_default_params().use_extra_bufts is False\n"
        "llm = llama_cpp.Llama(str(bundled_model_path()), n_ctx=256, verbose=False)\n"
        "llm.eval(llm.tokenize(b'Tomatoes need sun, water and warm soil.'))\n"
        "print(llm.n_tokens)\n"
    )
    env = {**os.environ, llama_buffers.ENV: "false"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.strip()) > 5


def test_the_launcher_runs_another_module_with_the_same_choice() -> None:
    env = {**os.environ, llama_buffers.ENV: "false"}
    out = subprocess.run([sys.executable, "-m", "openwen.engines.llama_buffers", "json.tool",
                          "--compact"], input='{"a": [1, 2]}', env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '{"a":[1,2]}'
    usage = subprocess.run([sys.executable, "-m", "openwen.engines.llama_buffers"],
                           capture_output=True, text=True, timeout=60)
    assert usage.returncode != 0 and "usage:" in usage.stderr
