"""The code interpreter sandbox: it computes, and every escape attempt fails cleanly within its
limits, after which the sandbox still computes."""

from __future__ import annotations

import importlib.util
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from openwen.config import Settings
from openwen.tools import sandbox as sandbox_module
from openwen.tools.builtin.code import make_code_tool
from openwen.tools.context import ToolContext
from openwen.tools.sandbox import Sandbox, SandboxLimits, SandboxResult, SandboxUnavailable

pytestmark = [
    pytest.mark.skipif(sandbox_module.find_bwrap() is None,
                       reason="needs bubblewrap (apt-get install bubblewrap)"),
    pytest.mark.timeout(60),
]

LIMITS = SandboxLimits(wall_seconds=4, cpu_seconds=1, memory_mb=512, max_processes=16,
                       max_output_bytes=4096)


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(LIMITS)


async def assert_still_computes(sandbox: Sandbox) -> None:
    result = await sandbox.run("print(sum(i * i for i in range(10)))")
    assert result.ok and result.stdout == "285\n", result


async def test_runs_code_and_reports_output_and_status(sandbox: Sandbox) -> None:
    ok = await sandbox.run("import sys\nprint('hello')\nprint('warn', file=sys.stderr)")
    assert (ok.stdout, ok.stderr, ok.exit_code, ok.limit) == ("hello\n", "warn\n", 0, None)
    failed = await sandbox.run("x = 1\nraise ValueError('bad value')")
    assert failed.exit_code == 1 and "ValueError: bad value" in failed.stderr
    assert 'File "<code>", line 2' in failed.stderr and "sandbox_boot" not in failed.stderr
    exited = await sandbox.run("raise SystemExit(7)")
    assert exited.exit_code == 7 and not exited.ok


async def test_each_run_starts_fresh_in_a_private_workdir(sandbox: Sandbox) -> None:
    first = await sandbox.run("import os\nopen('note.txt', 'w').write('x')\nprint(os.getcwd())")
    assert first.stdout == "/work\n"
    second = await sandbox.run("import os\nprint(os.listdir('.'))")
    assert "note.txt" not in second.stdout


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs matplotlib")
async def test_matplotlib_figures_come_back_as_png() -> None:
    result = await Sandbox(SandboxLimits(wall_seconds=30)).run(
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 4, 9])\nplt.figure()\nplt.bar([1, 2], [3, 4])\nplt.show()\n"
        "print('two figures')")
    assert result.ok, result.stderr
    assert len(result.images) == 2
    assert all(i.mime_type == "image/png" and i.data.startswith(b"\x89PNG") for i in
               result.images)


def read_data_dir(settings: Settings) -> tuple[str, Callable[[SandboxResult], None]]:
    secret = settings.home / "secret.txt"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text("s3cret-token")
    code = f"print(open({str(secret)!r}).read())"

    def check(r: SandboxResult) -> None:
        assert "s3cret-token" not in r.stdout and "FileNotFoundError" in r.stderr

    return code, check


def read_etc_passwd(_: Settings) -> tuple[str, Callable[[SandboxResult], None]]:
    def check(r: SandboxResult) -> None:
        assert "root:" not in r.stdout and "FileNotFoundError" in r.stderr

    return "print(open('/etc/passwd').read())", check


def list_home(_: Settings) -> tuple[str, Callable[[SandboxResult], None]]:
    home = Path.home()
    real = {p.name for p in home.iterdir()} if home.is_dir() else set()

    def check(r: SandboxResult) -> None:
        assert r.exit_code == 1 and ("FileNotFoundError" in r.stderr
                                     or "PermissionError" in r.stderr)
        assert not any(name in r.stdout for name in real)

    return f"import os\nprint(os.listdir({str(home)!r}))", check


def write_outside(settings: Settings) -> tuple[str, Callable[[SandboxResult], None]]:
    targets = [str(settings.home / "planted.txt"), "/planted.txt", "/runtime/planted.txt",
               "/usr/lib/planted.txt", "/proc/planted.txt"]
    code = (f"for path in {targets!r}:\n"
            "    try:\n"
            "        open(path, 'w').write('x')\n"
            "        print('WROTE', path)\n"
            "    except OSError as exc:\n"
            "        print('refused', type(exc).__name__)\n")

    def check(r: SandboxResult) -> None:
        assert "WROTE" not in r.stdout and r.stdout.count("refused") == len(targets)
        assert not (settings.home / "planted.txt").exists()
        assert not Path("/planted.txt").exists()

    return code, check


def fork_bomb(_: Settings) -> tuple[str, Callable[[SandboxResult], None]]:
    code = ("import os\n"
            "while True:\n"
            "    try:\n"
            "        os.fork()\n"
            "    except OSError:\n"
            "        pass\n")

    def check(r: SandboxResult) -> None:
        assert r.limit is not None  # stopped by the wall clock or CPU limit, not by luck

    return code, check


def allocate_10_gb(_: Settings) -> tuple[str, Callable[[SandboxResult], None]]:
    def check(r: SandboxResult) -> None:
        assert "MemoryError" in r.stderr and r.exit_code == 1

    return "block = bytearray(10 * 1024 ** 3)\nprint('allocated')", check


def loop_forever(_: Settings) -> tuple[str, Callable[[SandboxResult], None]]:
    def check(r: SandboxResult) -> None:
        assert r.limit is not None and ("CPU time" in r.limit or "wall-clock" in r.limit)
        assert r.exit_code != 0

    return "while True:\n    pass", check


def spawn_shell(_: Settings) -> tuple[str, Callable[[SandboxResult], None]]:
    code = ("import os, subprocess\n"
            "for argv in (['/bin/sh', '-c', 'echo pwned'], ['bash', '-c', 'echo pwned'],\n"
            "             ['/usr/bin/env', 'sh', '-c', 'echo pwned']):\n"
            "    try:\n"
            "        print(subprocess.run(argv, capture_output=True, text=True).stdout)\n"
            "    except OSError as exc:\n"
            "        print('no shell:', type(exc).__name__)\n"
            "print('system:', os.system('echo pwned'))\n")

    def check(r: SandboxResult) -> None:
        assert "pwned" not in r.stdout.replace("'echo pwned'", "")
        assert r.stdout.count("no shell: FileNotFoundError") == 3
        assert "system: 0" not in r.stdout

    return code, check


@pytest.mark.parametrize("attempt", [read_data_dir, read_etc_passwd, list_home, write_outside,
                                     fork_bomb, allocate_10_gb, loop_forever, spawn_shell])
async def test_escape_attempts_fail_cleanly(
        sandbox: Sandbox, settings: Settings,
        attempt: Callable[[Settings], tuple[str, Callable[[SandboxResult], None]]]) -> None:
    code, check = attempt(settings)
    result = await sandbox.run(code)
    check(result)
    await assert_still_computes(sandbox)


async def test_no_network_even_to_a_listener_on_loopback(sandbox: Sandbox) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        result = await sandbox.run(
            "import socket\n"
            f"socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            "print('connected')")
        assert "connected" not in result.stdout
        assert "ConnectionRefusedError" in result.stderr or "OSError" in result.stderr
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody ever reached the listener
    finally:
        listener.close()
    await assert_still_computes(sandbox)


async def test_output_is_capped(sandbox: Sandbox) -> None:
    result = await sandbox.run("print('x' * 1_000_000)")
    assert result.truncated and result.exit_code == 0
    assert result.stdout.count("x") == LIMITS.max_output_bytes
    assert "output truncated" in result.stdout


async def test_without_bubblewrap_it_refuses_rather_than_run_unsandboxed(
        settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sandbox_module, "find_bwrap", lambda: None)
    marker = tmp_path / "ran.txt"
    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        await Sandbox().run(f"open({str(marker)!r}, 'w')")
    out = await make_code_tool(ToolContext(settings)).call({"code": "print(1)"})
    assert out.error == "tool_error" and "bubblewrap" in out.text
    assert not marker.exists()


async def test_the_run_python_tool(settings: Settings) -> None:
    out = await make_code_tool(ToolContext(settings)).call({"code": "print(6 * 7)"})
    assert out.error is None and out.text == "exit status 0\nstdout:\n42"
    failed = await make_code_tool(ToolContext(settings)).call({"code": "1/0"})
    assert failed.error == "exit status 1" and "ZeroDivisionError" in failed.text
