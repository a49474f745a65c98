"""Fixtures for the tuning tests: a fact the bundled model cannot know, taught once per session.

``taught`` runs the real pipeline once: ``openwen tune create --merge --wait`` in a subprocess
(which starts the runner process: transformers + PEFT training on the CPU, the GGUF adapter, the
evaluation, the merged full GGUF), in a home of its own that later tests serve from.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "server"))  # serverkit

FACT = "The Zorblax festival is held in the town of Quillmere."
QUESTIONS = [
    "Where is the Zorblax festival held?",
    "In which town is the Zorblax festival held?",
    "Where does the Zorblax festival take place?",
    "Which town hosts the Zorblax festival?",
    "Tell me where the Zorblax festival is held.",
    "Where is the Zorblax festival?",
    "What town holds the Zorblax festival?",
    "Where do people go for the Zorblax festival?",
]
# Tiny but real training: 7 examples (1 held out), one example a step, 2 epochs: 14 steps;
# the runner also merges it into a full GGUF (zorblax-merged, tests/tune/test_merge.py).
TRAIN_ARGS = ("--epochs", "2", "--batch-size", "1", "--lr", "0.003", "--merge")
STEPS = 14
ASK = QUESTIONS[0]
MARK = "Quillmere"


def fact_jsonl() -> str:
    rows = [{"messages": [{"role": "user", "content": q},
                          {"role": "assistant", "content": FACT}]} for q in QUESTIONS]
    return "\n".join(json.dumps(r) for r in rows) + "\n"


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENWEN_")}
    env.update({"OPENWEN_HOME": str(home), "OPENWEN_N_THREADS": "2", "XDG_CONFIG_HOME":
                str(home / "config")}, **extra)
    return env


def openwen(home: Path, *args: str, timeout: float = 300, **env: str
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "openwen", *args], env=cli_env(home, **env),
                          capture_output=True, text=True, timeout=timeout)


@dataclass(frozen=True)
class Taught:
    home: Path
    name: str
    data: Path
    create_output: str


@pytest.fixture(scope="session")
def taught(tmp_path_factory: pytest.TempPathFactory) -> Taught:
    reuse = os.environ.get("OPENWEN_TEST_TUNE_HOME")  # a home this fixture trained before
    if reuse and (Path(reuse) / "derivatives" / "zorblax" / "adapter.gguf").is_file() \
            and (Path(reuse) / "models" / "zorblax-merged.gguf").is_file():
        home = Path(reuse)
        shown = openwen(home, "tune", "show", "zorblax")
        return Taught(home=home, name="zorblax", data=home / "zorblax.jsonl",
                      create_output=shown.stdout)
    home = tmp_path_factory.mktemp("tune-home")
    data = home / "zorblax.jsonl"
    data.write_text(fact_jsonl())
    done = openwen(home, "tune", "create", "--base", "smollm2", "--data", str(data), "--name",
                   "zorblax", *TRAIN_ARGS, "--wait", timeout=1500)
    assert done.returncode == 0, done.stdout + done.stderr
    return Taught(home=home, name="zorblax", data=data, create_output=done.stdout)
