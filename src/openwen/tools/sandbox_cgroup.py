"""Per-run control groups for the code sandbox: memory and process limits for a run as a whole.

Rlimits bind each process; a run that forks can still hold its memory limit once per process.
When the machine lets openwen manage control groups, every run gets its own group, with
``memory.max`` (and no swap) and ``pids.max`` covering all its processes and threads together:

- **cgroup v2** (one unified hierarchy): a parent ``openwen-sandbox`` with the ``memory`` and
  ``pids`` controllers enabled, made beside openwen's own cgroup when that is the root of the
  hierarchy (a root shell, CI, a container with its own cgroup namespace and no other
  processes), or the delegated cgroup named by ``sandbox_cgroup`` (for example one systemd made
  with ``Delegate=yes``);
- **cgroup v1** (separate ``memory`` and ``pids`` hierarchies): ``openwen-sandbox`` below
  openwen's own group in each, where openwen may write (root).

Each run is ``openwen-sandbox/run-<random>``. bubblewrap is started through ``/bin/sh``, which
writes its own pid into the run's ``cgroup.procs`` and then becomes bubblewrap, so every process
of the run is inside from its first instruction. After the run every process left is killed and
the group removed. When none of this is possible the mode is ``rlimits``, and one log line says
so, and why.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PARENT = "openwen-sandbox"
CGROUP_ROOT = Path("/sys/fs/cgroup")
SH = "/bin/sh"
# moves the shell into each cgroup.procs given before "--", then becomes the command after it
TRAMPOLINE = ('while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; '
              'exec "$@"')
TRAMPOLINE_FAILED = 125


@dataclass(frozen=True)
class CgroupMode:
    """How runs are limited: ``v2``, ``v1`` or ``rlimits`` (``parents`` are empty then)."""

    kind: str
    parents: tuple[Path, ...] = ()
    reason: str = ""
    owned: bool = True  # openwen made the parents: removed when no run is left in them

    @property
    def active(self) -> bool:
        return self.kind in ("v2", "v1")

    def describe(self) -> str:
        if not self.active:
            return (f"per-process rlimits only, no per-run cgroup ({self.reason}); a run's "
                    "processes together may exceed the memory limit")
        where = ", ".join(str(p) for p in self.parents)
        return f"cgroup {self.kind} per run (memory and pids for the whole run) under {where}"


@functools.cache
def detect(setting: str = "auto") -> CgroupMode:
    """The mode for ``sandbox_cgroup`` (``auto``, ``off``, or the path of a delegated parent),
    found once per process and setting (blocking: it may create the parent group) and logged
    in one line."""
    try:
        mode = _choose(setting.strip() or "auto")
    except OSError as exc:
        mode = CgroupMode("rlimits", reason=f"{type(exc).__name__}: {exc}")
    log.info("code sandbox limits: %s", mode.describe())
    return mode


def _choose(setting: str) -> CgroupMode:
    if setting.lower() in ("off", "no", "false", "none"):
        return CgroupMode("rlimits", reason="sandbox_cgroup is off")
    if not os.path.exists(SH):
        return CgroupMode("rlimits", reason=f"{SH} is missing")
    if setting.lower() != "auto":
        return _configured(Path(setting))
    mounts = _mounts()
    if "cgroup2" in mounts and _v2_has_controllers(mounts["cgroup2"]):
        return _auto_v2(mounts["cgroup2"])
    if "memory" in mounts and "pids" in mounts:
        return _auto_v1(mounts["memory"], mounts["pids"])
    return CgroupMode("rlimits", reason="no cgroup v2 hierarchy with the memory and pids "
                      "controllers, and no cgroup v1 memory and pids hierarchies")


def _mounts() -> dict[str, Path]:
    """Mount points: ``cgroup2`` for the unified hierarchy, controller names for v1 ones."""
    found: dict[str, Path] = {}
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if len(fields) < 5 or len(tail) < 3:
                continue
            point = Path(fields[4].replace("\\040", " "))
            if tail[0] == "cgroup2":
                found.setdefault("cgroup2", point)
            elif tail[0] == "cgroup":
                for option in tail[2].split(","):
                    if option in ("memory", "pids"):
                        found.setdefault(option, point)
    return found


def _own_paths() -> dict[str, str]:
    """openwen's own cgroup per hierarchy: ``""`` for v2, controller names for v1."""
    own: dict[str, str] = {}
    with open("/proc/self/cgroup", encoding="utf-8") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                own[name] = path
    return own


def _v2_has_controllers(mount: Path) -> bool:
    own = _own_paths().get("", "/")
    with contextlib.suppress(OSError):
        wanted = {"memory", "pids"}
        return wanted <= set((mount / own.lstrip("/") / "cgroup.controllers").read_text().split())
    return False


def _auto_v2(mount: Path) -> CgroupMode:
    own = _own_paths().get("", "/")
    if own != "/":
        return CgroupMode("rlimits", reason=(
            f"openwen's cgroup v2 group {own} is not the root of the hierarchy; set "
            "sandbox_cgroup to a delegated cgroup to limit runs as a whole"))
    return _prepare_v2(mount / PARENT, enable_in=mount)


def _configured(path: Path) -> CgroupMode:
    if not path.is_absolute() or ".." in path.parts:
        return CgroupMode("rlimits", reason=f"sandbox_cgroup {path} is not an absolute path")
    if not (path / "cgroup.procs").exists():
        return CgroupMode("rlimits", reason=f"sandbox_cgroup {path} is not a cgroup")
    if (path / "cgroup.controllers").exists():  # a v2 group: runs go right below it
        return _prepare_v2(path, enable_in=None, owned=False)
    return CgroupMode("rlimits", reason=f"sandbox_cgroup {path}: only cgroup v2 groups can "
                      "be configured (v1 is used automatically)")


def _prepare_v2(parent: Path, *, enable_in: Path | None, owned: bool = True) -> CgroupMode:
    mode = CgroupMode("v2", (parent,), owned=owned)
    try:
        if enable_in is not None:
            _enable(enable_in)
        _sweep(parent)
        _probe(mode)
    except OSError as exc:
        return CgroupMode("rlimits", reason=f"cannot use {parent}: {exc.strerror or exc}")
    return mode


def _enable(group: Path) -> None:
    have = set((group / "cgroup.subtree_control").read_text().split())
    missing = {"memory", "pids"} - have
    if missing:
        (group / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in sorted(missing)))


def _auto_v1(memory: Path, pids: Path) -> CgroupMode:
    own = _own_paths()
    parents = (memory / own.get("memory", "/").lstrip("/") / PARENT,
               pids / own.get("pids", "/").lstrip("/") / PARENT)
    mode = CgroupMode("v1", parents)
    try:
        for parent in parents:
            _sweep(parent)
        _probe(mode)
    except OSError as exc:
        return CgroupMode("rlimits", reason=f"cannot use the cgroup v1 hierarchies: "
                          f"{exc.strerror or exc}")
    return mode


def _probe(mode: CgroupMode) -> None:
    """Make and remove one run group, so a mode that cannot work is known before a run."""
    RunGroup.create(mode, memory_bytes=64 << 20, pids=4).remove()


def _sweep(parent: Path) -> None:
    """Remove run groups a killed openwen left behind (only empty ones can go)."""
    with contextlib.suppress(OSError):
        for stale in parent.glob("run-*"):
            with contextlib.suppress(OSError):
                stale.rmdir()


@dataclass
class RunGroup:
    """One run's group (one directory per hierarchy)."""

    kind: str
    paths: tuple[Path, ...]
    owned_parents: bool = True

    @classmethod
    def create(cls, mode: CgroupMode, *, memory_bytes: int, pids: int) -> RunGroup:
        """A new run group with its limits (blocking). Parents openwen owns are made here and
        removed with the last run in them, so nothing is left behind between runs."""
        name = f"run-{secrets.token_hex(8)}"
        group = cls(mode.kind, tuple(parent / name for parent in mode.parents), mode.owned)
        try:
            for path in group.paths:
                group._make(path)
            group._limit(memory_bytes, pids)
        except OSError:
            group.remove()
            raise
        return group

    def _make(self, path: Path) -> None:
        for _ in range(3):  # a parent may vanish between mkdir calls (another run's cleanup)
            if self.owned_parents and not path.parent.exists():
                with contextlib.suppress(FileExistsError):
                    path.parent.mkdir()
            if self.kind == "v2":
                _enable(path.parent)
            try:
                path.mkdir()
                return
            except FileNotFoundError:
                continue
        path.mkdir()

    def _limit(self, memory_bytes: int, pids: int) -> None:
        if self.kind == "v2":
            path = self.paths[0]
            _write(path / "memory.max", memory_bytes)
            _write(path / "memory.swap.max", 0, optional=True)
            _write(path / "memory.oom.group", 1, optional=True)
            _write(path / "pids.max", pids)
            return
        memory, pid_group = self.paths
        _write(memory / "memory.limit_in_bytes", memory_bytes)
        _write(memory / "memory.memsw.limit_in_bytes", memory_bytes, optional=True)
        _write(pid_group / "pids.max", pids)

    @property
    def procs_files(self) -> list[str]:
        return [str(path / "cgroup.procs") for path in self.paths]

    def wrap(self, command: list[str]) -> list[str]:
        """``command`` started inside this group (through the shell trampoline)."""
        return [SH, "-c", TRAMPOLINE, "openwen-sandbox", *self.procs_files, "--", *command]

    def memory_killed(self) -> bool:
        """Whether the kernel killed a process of this run for exceeding the memory limit."""
        if self.kind == "v2":
            events = _keyed(self.paths[0] / "memory.events")
            return events.get("oom_kill", 0) > 0 or events.get("oom_group_kill", 0) > 0
        control = _keyed(self.paths[0] / "memory.oom_control")
        if "oom_kill" in control:
            return control["oom_kill"] > 0
        return _number(self.paths[0] / "memory.failcnt") > 0 and control.get("under_oom", 0) > 0

    def peak_memory_bytes(self) -> int | None:
        name = "memory.peak" if self.kind == "v2" else "memory.max_usage_in_bytes"
        with contextlib.suppress(OSError, ValueError):
            return int((self.paths[0] / name).read_text().split()[0])
        return None

    def pids(self) -> list[int]:
        found: set[int] = set()
        for path in self.paths:
            with contextlib.suppress(OSError, ValueError):
                found |= {int(p) for p in (path / "cgroup.procs").read_text().split()}
        return sorted(found)

    def kill(self) -> None:
        """Kill every process of the run (the v2 ``cgroup.kill``, else one by one)."""
        if self.kind == "v2" and (self.paths[0] / "cgroup.kill").exists():
            with contextlib.suppress(OSError):
                _write(self.paths[0] / "cgroup.kill", 1)
                return
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def remove(self, *, wait: float = 5.0) -> None:
        """Kill what is left and remove the group (blocking, at most ``wait`` seconds)."""
        deadline = time.monotonic() + wait
        for path in reversed(self.paths):
            while path.exists():
                try:
                    path.rmdir()
                except FileNotFoundError:
                    break
                except OSError:  # EBUSY: processes still exiting
                    self.kill()
                    if time.monotonic() > deadline:
                        log.warning("sandbox cgroup %s could not be removed", path)
                        break
                    time.sleep(0.02)
            if self.owned_parents:
                with contextlib.suppress(OSError):  # busy while other runs use it: fine
                    path.parent.rmdir()


def _write(path: Path, value: int, *, optional: bool = False) -> None:
    try:
        path.write_text(str(value))
    except OSError:
        if not optional:
            raise


def _keyed(path: Path) -> dict[str, int]:
    values: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            with contextlib.suppress(ValueError):
                values[key] = int(value)
    return values


def _number(path: Path) -> int:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().split()[0])
    return 0
