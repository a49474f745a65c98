"""Run untrusted Python in a kernel sandbox (bubblewrap), without Docker.

Each run is a fresh process tree in new network, pid, ipc, uts (and cgroup) namespaces and a new
mount namespace whose file system holds only: the Python runtime read-only (interpreter,
standard library, site-packages, the shared libraries they link) under ``/runtime`` and
``/usr/lib``, a minimal ``/dev`` and ``/proc``, and a size-capped tmpfs working directory
``/work``. openwen's data, the home directory and ``/etc`` are simply not there, and there is no
shell. ``--die-with-parent`` and ``--new-session`` tie it to openwen and its terminal-less session.

Resource limits, in layers (README "Code sandbox"):

- a per-run control group (:mod:`openwen.tools.sandbox_cgroup`) where the machine allows it:
  ``memory.max`` and ``pids.max`` for all the run's processes together;
- rlimits set before the user's code runs: CPU time, address space (memory), file size, open
  files, and processes (per process; the only memory limit without a cgroup);
- a seccomp filter (:mod:`openwen.tools.sandbox_seccomp`) refusing namespace creation,
  ``ptrace``, ``bpf``, mounts, the key ring, module loading and the like;
- a cap on concurrent runs with a bounded queue (:mod:`openwen.tools.sandbox_gate`).

``RLIMIT_NPROC`` does not bind root, so when openwen runs as root (CI), bubblewrap starts as
root without a user namespace (one would map the sandbox to the real root) and the first code
inside drops to a fresh unprivileged uid; there the seccomp filter is what stops new user
namespaces. As an ordinary user the sandbox gets a user namespace, with nested ones disabled
(``--disable-userns``), and the filter too. The wall-clock limit is enforced from outside by
killing the whole tree. Output is size-capped.

Without ``bwrap`` the interpreter refuses to run (:class:`SandboxUnavailable`); it never runs
code unsandboxed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import logging
import os
import random
import shutil
import signal
import site
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from openwen.config import Settings
from openwen.messages import ToolImage
from openwen.tools import sandbox_cgroup, sandbox_seccomp
from openwen.tools.base import ToolError
from openwen.tools.sandbox_cgroup import CgroupMode, RunGroup
from openwen.tools.sandbox_gate import SandboxBusy, gate

log = logging.getLogger(__name__)

BOOT = Path(__file__).with_name("sandbox_boot.py")
_SYSTEM_LIB_PREFIXES = ("/usr/lib", "/lib", "/usr/lib64", "/lib64", "/usr/local/lib")
WORKDIR = "/work"
MAX_CODE_BYTES = 1024 * 1024


class SandboxUnavailable(ToolError):
    """The sandbox cannot run here (no bubblewrap, or the kernel refused the namespaces)."""


__all__ = ["Sandbox", "SandboxBusy", "SandboxLimits", "SandboxResult", "SandboxUnavailable"]


@dataclass(frozen=True)
class SandboxLimits:
    wall_seconds: float = 30.0
    cpu_seconds: int = 10
    memory_mb: int = 1024
    max_processes: int = 32
    max_output_bytes: int = 64 * 1024
    max_file_mb: int = 16
    workdir_mb: int = 64
    max_open_files: int = 256
    max_images: int = 8
    max_image_bytes: int = 4 * 1024 * 1024
    max_concurrent: int = 2  # runs at once in this process
    max_queued: int = 8  # runs waiting for a slot; more are refused (SandboxBusy)
    queue_seconds: float = 30.0  # the longest a run waits for a slot
    cgroup: str = "auto"  # per-run cgroup: auto, off, or a delegated cgroup v2 path

    @classmethod
    def from_settings(cls, settings: Settings) -> SandboxLimits:
        return cls(wall_seconds=settings.sandbox_wall_seconds,
                   cpu_seconds=settings.sandbox_cpu_seconds,
                   memory_mb=settings.sandbox_memory_mb,
                   max_processes=settings.sandbox_max_processes,
                   max_concurrent=settings.sandbox_max_concurrent,
                   max_queued=settings.sandbox_max_queued,
                   queue_seconds=settings.sandbox_wall_seconds,
                   cgroup=settings.sandbox_cgroup)

    def rlimits(self) -> dict[str, tuple[int, int]]:
        mib = 1024 * 1024
        return {
            "RLIMIT_CPU": (self.cpu_seconds, self.cpu_seconds + 1),
            "RLIMIT_AS": (self.memory_mb * mib, self.memory_mb * mib),
            "RLIMIT_FSIZE": (self.max_file_mb * mib, self.max_file_mb * mib),
            "RLIMIT_NOFILE": (self.max_open_files, self.max_open_files),
            "RLIMIT_NPROC": (self.max_processes, self.max_processes),
            "RLIMIT_CORE": (0, 0),
        }


@dataclass(frozen=True)
class SandboxResult:
    stdout: str
    stderr: str
    exit_code: int | None
    images: tuple[ToolImage, ...] = ()
    limit: str | None = None  # the limit that stopped the run, in words
    duration: float = 0.0
    truncated: bool = False
    peak_memory_mb: float | None = None  # of the whole run, when it had its own cgroup

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.limit is None


@dataclass(frozen=True)
class Runtime:
    """The read-only pieces of the Python runtime, and where they appear inside."""

    binds: tuple[tuple[str, str], ...]
    python: str
    path: tuple[str, ...]
    library_path: tuple[str, ...]


@functools.cache
def python_runtime() -> Runtime:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    exe = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    stdlib = os.path.realpath(sysconfig.get_paths()["stdlib"])
    binds = [(exe, "/runtime/bin/python3"), (stdlib, f"/runtime/lib/{version}")]
    path: list[str] = []
    dynload = os.path.realpath(sysconfig.get_config_var("DESTSHARED") or stdlib)
    if not dynload.startswith(stdlib + os.sep):
        binds.append((dynload, "/runtime/lib-dynload"))
        path.append("/runtime/lib-dynload")
    libs = ["/runtime/lib"]
    shared = _libpython()
    if shared:
        binds.append((shared, f"/runtime/lib/{os.path.basename(shared)}"))
    for i, directory in enumerate(_site_dirs(stdlib)):
        binds.append((directory, f"/runtime/site/{i}"))
        path.append(f"/runtime/site/{i}")
    objects = [exe, *([shared] if shared else []), *_shared_objects(dynload)]
    libraries, loaders = _linked_libraries(objects)
    lib_dirs: list[str] = []
    for library in libraries:
        directory = os.path.dirname(library)
        if directory.startswith(_SYSTEM_LIB_PREFIXES):
            if directory not in lib_dirs:
                lib_dirs.append(directory)
        elif library != shared:  # private libraries (a pyenv or conda prefix): one file each
            binds.append((library, f"/runtime/lib/{os.path.basename(library)}"))
    binds += [(d, d) for d in lib_dirs] + [(ld, ld) for ld in loaders]
    return Runtime(tuple(binds), "/runtime/bin/python3", tuple(path), (*libs, *lib_dirs))


def _libpython() -> str | None:
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        return None
    name = sysconfig.get_config_var("INSTSONAME") or sysconfig.get_config_var("LDLIBRARY")
    candidate = Path(sysconfig.get_config_var("LIBDIR") or "") / str(name)
    return os.path.realpath(candidate) if candidate.exists() else None


def _site_dirs(stdlib: str) -> list[str]:
    found = [*site.getsitepackages(), sysconfig.get_paths()["purelib"],
             sysconfig.get_paths()["platlib"]]
    dirs: list[str] = []
    for directory in found:
        real = os.path.realpath(directory)
        if os.path.isdir(real) and real not in dirs and not real.startswith(stdlib + os.sep):
            dirs.append(real)
    return dirs


def _shared_objects(directory: str) -> list[str]:
    with contextlib.suppress(OSError):
        return sorted(str(p) for p in Path(directory).glob("*.so"))
    return []


def _linked_libraries(objects: list[str]) -> tuple[list[str], list[str]]:
    """The shared libraries ``objects`` link (real paths), and the dynamic loader(s)."""
    ldd = shutil.which("ldd")
    out = ""
    if ldd:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([ldd, *objects], capture_output=True, text=True,
                                 timeout=30).stdout
    libraries: list[str] = []
    loaders: list[str] = []
    for line in out.splitlines():
        parts = line.split()
        if "=>" in parts and len(parts) >= 3 and parts[2].startswith("/"):
            library = os.path.realpath(parts[2])
            if library not in libraries:
                libraries.append(library)
        elif parts and parts[0].startswith("/") and "ld-" in parts[0] and parts[0] not in loaders:
            loaders.append(parts[0])
    if not libraries:  # no ldd: the usual multiarch places
        arch = sysconfig.get_config_var("MULTIARCH") or ""
        libraries = [f"{d}/libc.so.6" for d in (f"/usr/lib/{arch}", "/usr/lib64")
                     if arch and os.path.isdir(d)]
        loaders = [p for p in ("/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1")
                   if os.path.exists(p)]
    return libraries, loaders


def find_bwrap() -> str | None:
    return shutil.which("bwrap")


def log_sandbox_mode(settings: Settings) -> None:
    """Find (and log, once) how runs will be limited, so the server says it at startup."""
    if find_bwrap() is None:
        log.info("code sandbox: bubblewrap is not installed; run_python will refuse to run")
        return
    sandbox_cgroup.detect(settings.sandbox_cgroup)


@dataclass
class _Capture:
    limit: int
    data: bytearray = field(default_factory=bytearray)
    dropped: int = 0

    async def drain(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65536):
            room = self.limit - len(self.data)
            self.data += chunk[:max(room, 0)]
            self.dropped += max(len(chunk) - max(room, 0), 0)

    def text(self) -> str:
        text = self.data.decode("utf-8", errors="replace")
        if self.dropped:
            text += f"\n[... output truncated: {self.dropped} more bytes]"
        return text


class Sandbox:
    """Runs Python code in a fresh bubblewrap sandbox per call."""

    def __init__(self, limits: SandboxLimits | None = None, *, bwrap: str | None = None):
        self.limits = limits or SandboxLimits()
        self.bwrap = bwrap or find_bwrap()

    def command(self, runtime: Runtime, uid: int, result_fd: int, seccomp_fd: int
                ) -> list[str]:
        if not self.bwrap:
            raise SandboxUnavailable(
                "the code interpreter needs bubblewrap, which is not installed "
                "(Debian/Ubuntu: apt-get install bubblewrap); code is never run unsandboxed")
        cmd = [self.bwrap, *_namespace_flags(), "--die-with-parent", "--new-session",
               "--clearenv", "--seccomp", str(seccomp_fd)]
        for directory in _parents(dest for _source, dest in runtime.binds):
            cmd += ["--dir", directory]  # 0755: bwrap would make missing parents 0700
        for source, dest in runtime.binds:
            cmd += ["--ro-bind", source, dest]
        cmd += ["--proc", "/proc", "--dev", "/dev",
                "--perms", "1777", "--size", str(self.limits.workdir_mb * 1024 * 1024),
                "--tmpfs", WORKDIR, "--remount-ro", "/", "--chdir", WORKDIR]
        for key, value in _environment(runtime).items():
            cmd += ["--setenv", key, value]
        config = {"uid": uid, "rlimits": self.limits.rlimits(), "path": list(runtime.path),
                  "result_fd": result_fd, "max_images": self.limits.max_images,
                  "max_image_bytes": self.limits.max_image_bytes}
        return [*cmd, runtime.python, "-s", "-B", "-c", BOOT.read_text(), json.dumps(config)]

    async def run(self, code: str) -> SandboxResult:
        if len(code.encode("utf-8")) > MAX_CODE_BYTES:
            raise ToolError(f"the code is longer than {MAX_CODE_BYTES} bytes")
        limits = self.limits
        async with gate(limits.max_concurrent, limits.max_queued, limits.queue_seconds).slot():
            mode = await asyncio.to_thread(sandbox_cgroup.detect, limits.cgroup)
            group = await asyncio.to_thread(self._group, mode)
            try:
                return await self._run(code, group)
            finally:
                if group is not None:
                    await asyncio.to_thread(group.remove)

    def _group(self, mode: CgroupMode) -> RunGroup | None:
        if not mode.active:
            return None
        try:
            return RunGroup.create(mode, memory_bytes=self.limits.memory_mb * 1024 * 1024,
                                   pids=self.limits.max_processes)
        except OSError as exc:  # worked at startup: something changed; say so, never go on
            raise SandboxUnavailable(f"the sandbox's cgroup could not be made: {exc}") from None

    async def _run(self, code: str, group: RunGroup | None) -> SandboxResult:
        runtime = await asyncio.to_thread(python_runtime)
        try:
            seccomp_fd = await asyncio.to_thread(sandbox_seccomp.program_fd)
        except sandbox_seccomp.SeccompUnavailable as exc:
            raise SandboxUnavailable(str(exc)) from None
        uid = random.randint(200_000_000, 1_900_000_000) if os.getuid() == 0 else 0
        read_fd, write_fd = os.pipe()
        try:
            cmd = self.command(runtime, uid, write_fd, seccomp_fd)
            proc = await asyncio.create_subprocess_exec(
                *(group.wrap(cmd) if group else cmd), stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                pass_fds=(write_fd, seccomp_fd), env={}, start_new_session=True)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
            os.close(seccomp_fd)
        return await self._supervise(proc, read_fd, code, group)

    async def _supervise(self, proc: asyncio.subprocess.Process, read_fd: int,
                         code: str, group: RunGroup | None) -> SandboxResult:
        started = time.monotonic()
        out, err = _Capture(self.limits.max_output_bytes), _Capture(self.limits.max_output_bytes)
        images = _Capture(self.limits.max_images * self.limits.max_image_bytes * 2)
        result_stream = await _pipe_reader(read_fd)
        assert proc.stdout and proc.stderr
        readers = [asyncio.ensure_future(out.drain(proc.stdout)),
                   asyncio.ensure_future(err.drain(proc.stderr)),
                   asyncio.ensure_future(images.drain(result_stream))]
        watcher = asyncio.ensure_future(_watch_memory(group)) if group else None
        timed_out = False
        try:
            async with asyncio.timeout(self.limits.wall_seconds):
                await _feed(proc, code)
                await proc.wait()
                await asyncio.gather(*readers)
        except TimeoutError:
            timed_out = True
        finally:
            if watcher is not None:
                watcher.cancel()
            _kill(proc)
            if group is not None:
                await asyncio.to_thread(group.kill)
            await proc.wait()
            await _settle(readers)
        memory_killed = group is not None and await asyncio.to_thread(group.memory_killed)
        peak = await asyncio.to_thread(group.peak_memory_bytes) if group else None
        result = self._result(proc.returncode, out, err, images, timed_out,
                              time.monotonic() - started, memory_killed)
        return replace(result, peak_memory_mb=None if peak is None
                                   else round(peak / (1024 * 1024), 1))

    def _result(self, code: int | None, out: _Capture, err: _Capture, images: _Capture,
                timed_out: bool, duration: float, memory_killed: bool = False) -> SandboxResult:
        stderr = err.text()
        if not timed_out and not out.data and (
                (code == 1 and stderr.startswith("bwrap:"))
                or (code == sandbox_cgroup.TRAMPOLINE_FAILED
                    and stderr.startswith("openwen-sandbox:"))):
            raise SandboxUnavailable(f"the sandbox could not start: {stderr.strip()}")
        limit = None
        if memory_killed:
            limit = (f"memory limit of {self.limits.memory_mb} MiB for the whole run "
                     "(all its processes together)")
        elif timed_out:
            limit = f"wall-clock limit of {self.limits.wall_seconds:g} s"
        elif code in (128 + signal.SIGXCPU, 128 + signal.SIGKILL):
            limit = f"CPU time limit of {self.limits.cpu_seconds} s"
        elif code == 128 + signal.SIGXFSZ:
            limit = f"file size limit of {self.limits.max_file_mb} MiB"
        return SandboxResult(out.text(), stderr, None if timed_out else code,
                             _decode_images(bytes(images.data)), limit, duration,
                             bool(out.dropped or err.dropped))


def _parents(paths: Iterable[str]) -> list[str]:
    found = {str(parent) for path in paths for parent in PurePosixPath(path).parents}
    return sorted(found - {"/"}, key=lambda p: (p.count("/"), p))


def _namespace_flags() -> list[str]:
    if os.getuid() == 0:
        # root: no user namespace (RLIMIT_NPROC would not bind); the boot code drops to a
        # fresh uid, for which bwrap keeps just the capabilities to do so
        return ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                "--unshare-cgroup-try", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    return ["--unshare-all", "--unshare-user", "--disable-userns"]


def _environment(runtime: Runtime) -> dict[str, str]:
    return {
        "PATH": "/runtime/bin", "HOME": WORKDIR, "TMPDIR": WORKDIR, "LANG": "C.UTF-8",
        "PYTHONUTF8": "1", "PYTHONIOENCODING": "utf-8", "PYTHONDONTWRITEBYTECODE": "1",
        "LD_LIBRARY_PATH": ":".join(runtime.library_path),
        "MPLBACKEND": "Agg", "MPLCONFIGDIR": f"{WORKDIR}/.config/matplotlib",
        "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
    }


async def _watch_memory(group: RunGroup, every: float = 0.1) -> None:
    """End the whole run as soon as the kernel killed one of its processes for memory (cgroup
    v2 does this itself with ``memory.oom.group``; v1 kills one process only)."""
    while not await asyncio.to_thread(group.memory_killed):
        await asyncio.sleep(every)
    await asyncio.to_thread(group.kill)


async def _pipe_reader(fd: int) -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                 os.fdopen(fd, "rb", buffering=0))
    return reader


async def _feed(proc: asyncio.subprocess.Process, code: str) -> None:
    assert proc.stdin
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        proc.stdin.write(code.encode("utf-8"))
        await proc.stdin.drain()
    proc.stdin.close()


def _kill(proc: asyncio.subprocess.Process) -> None:
    """Kill bwrap's process group; --die-with-parent then takes the pid namespace down."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


async def _settle(readers: Sequence[asyncio.Future[None]]) -> None:
    done, pending = await asyncio.wait(readers, timeout=5)
    for task in pending:
        task.cancel()
    for task in done:
        if task.exception() is not None:
            log.debug("sandbox reader failed: %r", task.exception())


def _decode_images(data: bytes) -> tuple[ToolImage, ...]:
    images = []
    for line in data.splitlines():
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            png = base64.b64decode(json.loads(line)["png"], validate=True)
            if png.startswith(b"\x89PNG\r\n\x1a\n"):
                images.append(ToolImage("image/png", png))
    return tuple(images)
