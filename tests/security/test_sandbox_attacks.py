"""Attacks on the code sandbox as a whole (issue 10, findings 5 and 6), performed for real in
bubblewrap: a run's forked children share one memory limit, a fork bomb is bounded, runs beyond
the concurrency cap queue or are refused, and the seccomp filter stops namespace creation,
mounts, ptrace and the like, while numpy, threads and matplotlib keep working."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import platform
import struct
from pathlib import Path

import pytest

from openwen.config import Settings
from openwen.tools import sandbox_cgroup, sandbox_seccomp
from openwen.tools.builtin.code import make_code_tool
from openwen.tools.context import ToolContext
from openwen.tools.sandbox import Sandbox, SandboxBusy, SandboxLimits, find_bwrap

pytestmark = [
    pytest.mark.skipif(find_bwrap() is None,
                       reason="needs bubblewrap (apt-get install bubblewrap)"),
    pytest.mark.timeout(120),
]

MODE = sandbox_cgroup.detect("auto")
needs_cgroup = pytest.mark.skipif(not MODE.active, reason=f"no per-run cgroup here: "
                                  f"{MODE.reason}")

FOUR_CHILDREN_700_MIB = """
import os, time
children = []
for i in range(4):
    pid = os.fork()
    if pid == 0:
        block = b"x" * (700 * 1024 * 1024)  # written, so it is resident
        print("child", i, "holds 700 MiB", flush=True)
        time.sleep(3)
        os._exit(0)
    children.append(pid)
for pid in children:
    os.waitpid(pid, 0)
print("all four held 2800 MiB")
"""


@needs_cgroup
async def test_forked_children_share_one_memory_limit() -> None:
    sandbox = Sandbox(SandboxLimits(wall_seconds=30, memory_mb=1024, max_processes=16))
    result = await sandbox.run(FOUR_CHILDREN_700_MIB)
    assert "all four held" not in result.stdout, result
    assert result.stdout.count("holds 700 MiB") <= 1
    assert result.limit is not None and "memory limit of 1024 MiB for the whole run" in \
        result.limit, result
    assert result.peak_memory_mb is not None and result.peak_memory_mb <= 1024 + 1
    assert not list(MODE.parents[0].glob("run-*"))  # the run's group is gone
    await assert_still_computes(sandbox)


async def test_a_fork_bomb_is_bounded() -> None:
    sandbox = Sandbox(SandboxLimits(wall_seconds=5, max_processes=16))
    result = await sandbox.run(
        "import os, time\n"
        "n = 0\n"
        "try:\n"
        "    while True:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(60)\n"
        "            os._exit(0)\n"
        "        n += 1\n"
        "except OSError as exc:\n"
        "    print('forks', n, type(exc).__name__, flush=True)\n"
        "time.sleep(60)\n")
    forks = int(result.stdout.split()[1])
    assert 1 <= forks < 16 and "BlockingIOError" in result.stdout, result
    assert result.limit is not None and "wall-clock" in result.limit  # killed, tree and all
    if MODE.active:
        assert not list(MODE.parents[-1].glob("run-*"))
    await assert_still_computes(sandbox)


async def test_runs_beyond_the_cap_queue_then_are_refused() -> None:
    limits = SandboxLimits(wall_seconds=20, max_concurrent=1, max_queued=1, queue_seconds=20)
    sandbox = Sandbox(limits)
    code = "import time\ntime.sleep(1.5)\nprint('done')"
    results = await asyncio.gather(*(sandbox.run(code) for _ in range(3)),
                                   return_exceptions=True)
    done = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert [r.stdout for r in done] == ["done\n", "done\n"]  # one ran, one waited, then ran
    assert len(refused) == 1 and isinstance(refused[0], SandboxBusy)
    assert "busy" in str(refused[0]) and "try again" in str(refused[0])


async def test_a_queued_run_waits_a_bounded_time() -> None:
    sandbox = Sandbox(SandboxLimits(wall_seconds=10, max_concurrent=1, max_queued=1,
                                    queue_seconds=0.5))
    slow, waiting = await asyncio.gather(sandbox.run("import time\ntime.sleep(3)\nprint('ok')"),
                                         sandbox.run("print('never')"), return_exceptions=True)
    assert not isinstance(slow, BaseException) and slow.stdout == "ok\n"
    assert isinstance(waiting, SandboxBusy)


async def test_the_run_python_tool_answers_busy_beyond_the_cap(settings: Settings) -> None:
    busy = settings.model_copy(update={"sandbox_max_concurrent": 1, "sandbox_max_queued": 0})
    tool = make_code_tool(ToolContext(busy))
    code = {"code": "import time\ntime.sleep(0.5)\nprint('ran')"}
    outputs = await asyncio.gather(*(tool.call(code) for _ in range(3)))
    assert [o.error for o in outputs] == [None, "tool_error", "tool_error"], outputs
    assert "ran" in outputs[0].text
    assert all("sandbox is busy" in o.text and "try again" in o.text for o in outputs[1:])


SYSCALLS = {  # numbers for the raw syscall() calls below
    "x86_64": {"clone": 56, "keyctl": 250, "io_uring_setup": 425, "bpf": 321},
    "aarch64": {"clone": 220, "keyctl": 219, "io_uring_setup": 425, "bpf": 280},
}

ESCAPES = """
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
NR = {numbers!r}

def report(name, rc):
    print(name, "SUCCEEDED" if rc >= 0 else errno.errorcode.get(ctypes.get_errno(), "?"))

report("unshare(CLONE_NEWUSER)", libc.unshare(0x10000000))
report("unshare(CLONE_NEWNS)", libc.unshare(0x00020000))
report("mount", libc.mount(b"none", b"/work", b"tmpfs", 0, None))
report("ptrace(TRACEME)", libc.ptrace(0, 0, None, None))
rc = libc.syscall(NR["clone"], 0x10000000 | 17, 0, 0, 0, 0)  # CLONE_NEWUSER | SIGCHLD
if rc == 0:
    os._exit(0)
report("clone(CLONE_NEWUSER)", rc)
report("keyctl", libc.syscall(NR["keyctl"], 0, -3, 0))  # KEYCTL_GET_KEYRING_ID, session
params = ctypes.create_string_buffer(120)
report("io_uring_setup", libc.syscall(NR["io_uring_setup"], 4, params))
report("bpf", libc.syscall(NR["bpf"], 0, None, 0))
fd = os.open("/proc/self/ns/net", os.O_RDONLY)
report("setns", libc.setns(fd, 0))
"""


async def test_seccomp_refuses_namespaces_mounts_ptrace_and_kernel_surfaces() -> None:
    numbers = SYSCALLS[sandbox_seccomp.machine()]
    result = await Sandbox(SandboxLimits(wall_seconds=20)).run(ESCAPES.format(numbers=numbers))
    assert result.exit_code == 0, result
    lines = dict(line.rsplit(" ", 1) for line in result.stdout.splitlines())
    assert set(lines) == {"unshare(CLONE_NEWUSER)", "unshare(CLONE_NEWNS)", "mount",
                          "ptrace(TRACEME)", "clone(CLONE_NEWUSER)", "keyctl",
                          "io_uring_setup", "bpf", "setns"}
    assert "SUCCEEDED" not in lines.values(), result.stdout
    assert all(value == "EPERM" for value in lines.values()), result.stdout


async def test_ordinary_code_still_works_under_the_filter() -> None:
    result = await Sandbox(SandboxLimits(wall_seconds=30)).run(
        "import threading, subprocess, sys, os\n"
        "import numpy as np\n"
        "out = []\n"
        "t = threading.Thread(target=lambda: out.append(int(np.arange(10).sum())))\n"
        "t.start(); t.join()\n"
        "a = np.random.default_rng(0).random((120, 120))\n"
        "print(out[0], np.allclose(np.linalg.inv(a) @ a, np.eye(120)))\n"
        "child = subprocess.run([sys.executable, '-c', 'print(6 * 7)'], capture_output=True,\n"
        "                       text=True)\n"
        "print(child.stdout.strip())\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os._exit(3)\n"
        "print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n")
    assert result.ok, result
    assert result.stdout.split() == ["45", "True", "42", "3"]


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs matplotlib")
async def test_matplotlib_still_draws_under_the_filter() -> None:
    result = await Sandbox(SandboxLimits(wall_seconds=60)).run(
        "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.show()")
    assert result.ok, result.stderr
    assert len(result.images) == 1 and result.images[0].data.startswith(b"\x89PNG")


def test_the_filter_checks_the_architecture_first() -> None:
    program = sandbox_seccomp.filter_program()
    code, _, _, k = struct.unpack("<HBBI", program[:8])
    assert (code, k) == (0x20, 4)  # load seccomp_data.arch
    code, _, _, arch = struct.unpack("<HBBI", program[8:16])
    assert code == 0x15  # jump if equal
    assert arch == {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}[sandbox_seccomp.machine()]


def test_other_machines_are_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "machine", lambda: "riscv64")
    with pytest.raises(sandbox_seccomp.SeccompUnavailable, match="x86_64 and aarch64"):
        sandbox_seccomp.machine()


def test_the_limit_mode_is_logged_once(caplog: pytest.LogCaptureFixture, tmp_path: Path
                                       ) -> None:
    sandbox_cgroup.detect.cache_clear()
    with caplog.at_level(logging.INFO, logger="openwen.tools.sandbox_cgroup"):
        mode = sandbox_cgroup.detect("auto")
        assert sandbox_cgroup.detect("auto") is mode
        off = sandbox_cgroup.detect("off")
        bogus = sandbox_cgroup.detect(str(tmp_path))  # not a cgroup
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3 and all(line.startswith("code sandbox limits: ") for line in lines)
    assert (mode.kind in lines[0]) and ("per-process rlimits only" in lines[1])
    assert not off.active and "sandbox_cgroup is off" in off.reason
    assert not bogus.active and "is not a cgroup" in bogus.reason


async def test_without_a_cgroup_the_rlimits_still_apply() -> None:
    sandbox = Sandbox(SandboxLimits(wall_seconds=10, memory_mb=256, cgroup="off"))
    result = await sandbox.run("block = bytearray(1024 ** 3)")
    assert "MemoryError" in result.stderr and result.peak_memory_mb is None
    await assert_still_computes(sandbox)


async def assert_still_computes(sandbox: Sandbox) -> None:
    result = await sandbox.run("print(sum(i * i for i in range(10)))")
    assert result.ok and result.stdout == "285\n", result
