"""The code sandbox's seccomp filter: system calls sandboxed code never needs, refused.

The filter is built with libseccomp (through the ``pyseccomp`` ctypes binding), exported as a
classic BPF program and handed to bubblewrap's ``--seccomp FD``, which installs it (with
``no_new_privs``) just before it starts the sandbox's first process; every process inside
inherits it and cannot remove it.

What is refused (``EPERM``, so Python raises ``PermissionError``):

- new namespaces: ``unshare``, ``setns``, and ``clone`` with any ``CLONE_NEW*`` flag.
  ``clone3`` answers ``ENOSYS`` (its flags sit behind a pointer a filter cannot read), so libc
  falls back to ``clone``, whose flags the filter checks;
- looking into or steering other processes: ``ptrace``, ``process_vm_readv/writev``,
  ``pidfd_getfd``, ``kcmp``;
- kernel attack surface: ``bpf``, ``perf_event_open``, ``userfaultfd``, ``io_uring_*``, the
  key ring (``keyctl``, ``add_key``, ``request_key``), module loading, ``kexec_*``;
- the file-system tree and the machine: every mount call, ``pivot_root``, ``chroot``, swap,
  reboot, clocks, host names, quotas, ``acct``, ``open_by_handle_at`` and the like.

Anything else is allowed; a system call of another architecture (32-bit compat, x32) kills the
process. Supported: x86_64 and aarch64 (the filter is built for the machine openwen runs on).
"""

from __future__ import annotations

import errno
import functools
import os
import platform
import tempfile
from typing import Any

SUPPORTED_MACHINES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64",
                      "arm64": "aarch64"}

# flags of clone(2) that create a namespace (CLONE_NEWTIME only exists for clone3)
CLONE_NEW_FLAGS = {
    "CLONE_NEWNS": 0x00020000, "CLONE_NEWCGROUP": 0x02000000, "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000, "CLONE_NEWUSER": 0x10000000, "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}

REFUSED = (
    # namespaces
    "unshare", "setns",
    # other processes
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp",
    # kernel attack surface
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "keyctl", "add_key", "request_key", "init_module", "finit_module",
    "delete_module", "kexec_load", "kexec_file_load", "lookup_dcookie", "fanotify_init",
    "open_by_handle_at", "name_to_handle_at", "uselib", "syslog",
    # file-system tree and machine
    "mount", "umount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen",
    "fsconfig", "fsmount", "fspick", "mount_setattr", "swapon", "swapoff", "reboot", "acct",
    "quotactl", "quotactl_fd", "nfsservctl", "vhangup", "settimeofday", "clock_settime",
    "clock_adjtime", "adjtimex", "sethostname", "setdomainname", "iopl", "ioperm",
)


class SeccompUnavailable(RuntimeError):
    """No filter can be built here (no libseccomp, or an unsupported machine)."""


def machine() -> str:
    """``x86_64`` or ``aarch64``; :class:`SeccompUnavailable` for anything else."""
    name = platform.machine().lower()
    if name not in SUPPORTED_MACHINES:
        raise SeccompUnavailable(f"the sandbox's seccomp filter supports x86_64 and aarch64, "
                                 f"not {name or 'this machine'}")
    return SUPPORTED_MACHINES[name]


def _library() -> Any:
    machine()
    try:
        import pyseccomp
    except ImportError as exc:  # the package, or libseccomp.so.2 it loads, is missing
        raise SeccompUnavailable(
            "the code sandbox needs libseccomp for its system-call filter "
            "(Debian/Ubuntu: apt-get install libseccomp2; pip install pyseccomp)") from exc
    except (OSError, RuntimeError) as exc:
        raise SeccompUnavailable(
            f"libseccomp could not be loaded ({exc}); Debian/Ubuntu: apt-get install "
            "libseccomp2") from exc
    return pyseccomp


@functools.cache
def filter_program() -> bytes:
    """The filter as a classic BPF program (struct sock_filter[]), built once per process."""
    sc = _library()
    refuse = sc.ERRNO(errno.EPERM)
    flt = sc.SyscallFilter(sc.ALLOW)
    flt.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)
    for name in REFUSED:
        _add(sc, flt, refuse, name)
    for flag in CLONE_NEW_FLAGS.values():  # clone(flags, ...): flags is argument 0 here
        _add(sc, flt, refuse, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    _add(sc, flt, sc.ERRNO(errno.ENOSYS), "clone3")
    with tempfile.TemporaryFile() as out:
        flt.export_bpf(out)
        out.seek(0)
        program = out.read()
    if not program or len(program) % 8:
        raise SeccompUnavailable("libseccomp exported an empty or malformed filter")
    return program


def _add(sc: Any, flt: Any, action: int, name: str, *args: Any) -> None:
    try:
        number = sc.resolve_syscall(sc.Arch.NATIVE, name)
    except (OSError, ValueError):
        return
    if number < 0:  # not a system call of this architecture (iopl on aarch64, ...)
        return
    flt.add_rule(action, number, *args)


def program_fd() -> int:
    """A readable file descriptor positioned at the start of the filter program, for
    ``bwrap --seccomp FD`` (the caller closes it after starting bubblewrap)."""
    program = filter_program()
    fd = os.memfd_create("openwen-seccomp", os.MFD_CLOEXEC) if hasattr(os, "memfd_create") \
        else _tmpfile_fd()
    try:
        view = memoryview(program)
        while view:
            view = view[os.write(fd, view):]
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _tmpfile_fd() -> int:
    fd, path = tempfile.mkstemp(prefix="openwen-seccomp-")
    os.unlink(path)
    return fd
