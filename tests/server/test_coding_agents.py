"""Claude Code and Codex CLI, the real programs, as clients of a real server on the bundled model.

Both agents come from npm at the versions pinned in ``scripts/agents.txt``; ``scripts/install
--test`` puts them in ``.cache/agents`` and, if they are missing there, the first test installs
them (the tests skip, saying why, where there is no npm or the install fails).

Each agent's whole prompt (Claude Code ~20,000 tokens, Codex ~6,500 as this server counts it)
is larger than the test server's 4,096-token context, so the first test of each shows the agent
telling its user the server's context error; the second trims the agent's request with its own
flags (a short system prompt, fewer tools) and gets a real answer, streamed through the
dialect. Answer quality does not matter here (a 135M model); the protocol does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from serverkit import RunningServer, running_server, server_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
AGENTS = ROOT / ".cache" / "agents"
PINS = ROOT / "scripts" / "agents.txt"
N_CTX = 4096
RUN_SECONDS = 500  # a generous "did not hang" bound (a loaded 2-core machine took 230 s)


def _pins() -> list[str]:
    return [line.strip() for line in PINS.read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def _installed() -> bool:
    bin_dir = AGENTS / "node_modules" / ".bin"
    wanted = {pin.rsplit("@", 1)[0]: pin.rsplit("@", 1)[1] for pin in _pins()}
    for package, version in wanted.items():
        manifest = AGENTS / "node_modules" / package / "package.json"
        if not manifest.exists() or json.loads(manifest.read_text())["version"] != version:
            return False
    return (bin_dir / "claude").exists() and (bin_dir / "codex").exists()


@pytest.fixture(scope="module")
def agents() -> Path:
    """``node_modules/.bin`` holding ``claude`` and ``codex`` (installed now if missing)."""
    if not _installed():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed: Claude Code and Codex CLI come from npm")
        done = subprocess.run([npm, "install", "--prefix", str(AGENTS), "--no-audit",
                               "--no-fund", "--loglevel=error", *_pins()],
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0 or not _installed():
            pytest.skip(f"npm could not install the coding agents: {done.stderr[-500:]}")
    return AGENTS / "node_modules" / ".bin"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = server_settings(tmp_path_factory.mktemp("agents-home"), n_ctx=N_CTX)
    with running_server(settings) as running:
        yield running


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A private HOME (the agents write their state there), with a file to read."""
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "note.txt").write_text("The secret word is pelican.\n")
    return tmp_path


def _run(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {key: os.environ[key] for key in ("PATH", "LANG", "TERM") if key in os.environ}
    return subprocess.run(command, env={**base, **env}, cwd=cwd, capture_output=True, text=True,
                          timeout=RUN_SECONDS, stdin=subprocess.DEVNULL)


# -- Claude Code (Anthropic Messages) -----------------------------------------------------------


def _claude(agents: Path, server: RunningServer, home: Path, *args: str
            ) -> subprocess.CompletedProcess[str]:
    env = {"HOME": str(home), "ANTHROPIC_BASE_URL": server.url,
           "ANTHROPIC_API_KEY": "unused-on-loopback",
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1",
           # an answer cut at max_tokens is an error to Claude Code (it retries); this bound
           # leaves room for the model's own end of turn while keeping a rambling one short
           "CLAUDE_CODE_MAX_OUTPUT_TOKENS": "150"}
    return _run([str(agents / "claude"), "-p", *args, "--model", "smollm2"], env,
                home / "work")


def test_claude_code_shows_the_context_error(agents: Path, server: RunningServer,
                                             home: Path) -> None:
    done = _claude(agents, server, home, "Say hello.")
    assert done.returncode != 0
    # Claude Code prints the message of an error in Anthropic's shape as it is
    assert "API Error: 400" in done.stdout
    assert f"the model's context holds {N_CTX} tokens" in done.stdout


def test_claude_code_gets_a_streamed_answer(agents: Path, server: RunningServer,
                                            home: Path) -> None:
    done = _claude(agents, server, home, "Greet me in one short sentence.",
                   "--tools", "Read", "--system-prompt", "You are a helpful assistant.",
                   "--output-format", "json")
    result = json.loads(done.stdout)
    usage = result["usage"]
    if result.get("api_error") == "max_output_tokens":
        # SmolLM2 sometimes rambles past the 150-token cap: the answer streamed, was cut at the
        # cap (stop_reason max_tokens) and Claude Code, which retries such answers, said so
        assert usage["output_tokens"] >= 150, done.stdout
    else:
        assert done.returncode == 0, done.stdout + done.stderr
        assert result["is_error"] is False and result["subtype"] == "success"
        assert result["result"].strip()
        assert result["stop_reason"] in ("end_turn", "max_tokens", "tool_use")
    # its system prompt, the Read tool and its environment notes (a system message among the
    # messages) all reached the model: several hundred tokens, reported in Anthropic's terms
    assert usage["input_tokens"] + usage["cache_read_input_tokens"] > 500
    assert usage["output_tokens"] >= 1


# -- Codex CLI (OpenAI Responses) ---------------------------------------------------------------

SLIM_CODEX = ["-c", "web_search=\"disabled\"", "--disable", "multi_agent", "--disable", "goals",
              "--disable", "apps", "--disable", "plugins", "--disable", "skill_search",
              "--disable", "view_image", "--disable", "image_generation",
              "--disable", "unified_exec"]


def _codex(agents: Path, server: RunningServer, home: Path, *args: str
           ) -> subprocess.CompletedProcess[str]:
    codex_home = home / "codex"
    codex_home.mkdir(exist_ok=True)
    (codex_home / "config.toml").write_text(
        'model = "smollm2"\nmodel_provider = "openwen"\n\n[model_providers.openwen]\n'
        f'name = "openwen"\nbase_url = "{server.v1}"\nwire_api = "responses"\n'
        'env_key = "OPENWEN_API_KEY"\n')
    env = {"HOME": str(home), "CODEX_HOME": str(codex_home),
           "OPENWEN_API_KEY": "unused-on-loopback"}
    return _run([str(agents / "codex"), "exec", "--skip-git-repo-check", *args], env,
                home / "work")


def test_codex_shows_the_context_error(agents: Path, server: RunningServer, home: Path) -> None:
    done = _codex(agents, server, home, "Say hello.")
    assert done.returncode != 0
    # Codex reads the error's code (context_length_exceeded) and words it itself
    assert "ran out of room in the model's context window" in done.stderr


def test_codex_gets_a_streamed_answer(agents: Path, server: RunningServer, home: Path) -> None:
    instructions = home / "instructions.md"
    instructions.write_text("You are a helpful assistant. Answer briefly.\n")
    done = _codex(agents, server, home, "-c", f'model_instructions_file="{instructions}"',
                  *SLIM_CODEX, "Say hello.")
    transcript = done.stdout + done.stderr
    if "Incomplete response returned, reason: max_output_tokens" in transcript:
        # SmolLM2 sometimes rambles until the context is full: the answer streamed, ended as
        # response.incomplete (reason max_output_tokens) and Codex, which counts that as a
        # failed turn, said so and exited 1
        assert done.returncode == 1, transcript
        # the agent printed the streamed answer under its "codex" heading
        assert transcript.partition("\ncodex\n")[2].strip(), transcript
    else:
        assert done.returncode == 0, transcript
        assert done.stdout.strip()  # the final answer, streamed as response.output_text.delta
    assert "tokens used" in done.stderr  # from the last event's usage
