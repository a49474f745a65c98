"""List, read and write files in the user's workspace (``<home>/workspaces/<user>``).

Paths are relative to the workspace. Every path is walked one component at a time with
``openat`` and ``O_NOFOLLOW``: ``..`` is refused, symbolic links are never followed (so a link
cannot lead out), and sizes are capped per read, per write and for the whole workspace.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from openwen.tools.base import FunctionTool, ToolError
from openwen.tools.context import ToolContext

MAX_READ_BYTES = 256 * 1024
MAX_WRITE_BYTES = 1024 * 1024
MAX_WORKSPACE_BYTES = 100 * 1024 * 1024
MAX_LIST_ENTRIES = 500
MAX_DEPTH = 8
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Workspace:
    """A directory the model may use, and nothing outside it."""

    def __init__(self, root: Path):
        self.root = root

    def parts(self, path: str) -> list[str]:
        if "\x00" in path:
            raise ToolError("the path contains a NUL character")
        parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
        if ".." in parts:
            raise ToolError("paths may not contain '..'; they are relative to the workspace")
        return parts

    @contextlib.contextmanager
    def directory(self, parts: list[str], *, create: bool = False) -> Iterator[int]:
        """A file descriptor of the directory ``parts`` names, walked without following links."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root, _DIR_FLAGS)
        try:
            for i, part in enumerate(parts):
                shown = "/".join(parts[: i + 1])
                next_fd = _open_dir(fd, part, shown, create)
                os.close(fd)
                fd = next_fd
            yield fd
        finally:
            os.close(fd)

    def list(self, path: str, recursive: bool) -> str:
        parts = self.parts(path)
        lines: list[str] = []
        with self.directory(parts) as fd:
            _list_into(fd, "", lines, MAX_DEPTH if recursive else 1)
        shown = "/".join(parts) or "."
        if not lines:
            return f"{shown}: (empty)"
        if len(lines) > MAX_LIST_ENTRIES:
            lines = lines[:MAX_LIST_ENTRIES] + [f"... and {len(lines) - MAX_LIST_ENTRIES} more"]
        return f"{shown}:\n" + "\n".join(lines)

    def read(self, path: str) -> str:
        parts = self.parts(path)
        if not parts:
            raise ToolError("give a file path")
        with self.directory(parts[:-1]) as dir_fd:
            fd = _open_file(dir_fd, parts[-1], path, os.O_RDONLY)
            with os.fdopen(fd, "rb") as fh:
                data = fh.read(MAX_READ_BYTES + 1)
        if b"\x00" in data[:8192]:
            raise ToolError(f"{path} is a binary file")
        text = data[:MAX_READ_BYTES].decode("utf-8", errors="replace")
        if len(data) > MAX_READ_BYTES:
            text += f"\n[... truncated: the file is larger than {MAX_READ_BYTES} bytes]"
        return text

    def write(self, path: str, content: str, append: bool) -> str:
        parts = self.parts(path)
        if not parts:
            raise ToolError("give a file path")
        data = content.encode("utf-8")
        if len(data) > MAX_WRITE_BYTES:
            raise ToolError(f"the content is {len(data)} bytes; one write takes at most "
                            f"{MAX_WRITE_BYTES}")
        if self.usage() + len(data) > MAX_WORKSPACE_BYTES:
            raise ToolError(f"the workspace would exceed its {MAX_WORKSPACE_BYTES} byte quota")
        mode = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
        with self.directory(parts[:-1], create=True) as dir_fd:
            fd = _open_file(dir_fd, parts[-1], path, mode)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        return f"{'appended' if append else 'wrote'} {len(data)} bytes to {'/'.join(parts)}"

    def usage(self) -> int:
        total = 0
        for base, _dirs, files in os.walk(self.root):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(base, name)).st_size
        return total


def _open_dir(fd: int, part: str, shown: str, create: bool) -> int:
    try:
        return os.open(part, _DIR_FLAGS, dir_fd=fd)
    except FileNotFoundError:
        if not create:
            raise ToolError(f"no such directory: {shown}") from None
        os.mkdir(part, 0o755, dir_fd=fd)
        return os.open(part, _DIR_FLAGS, dir_fd=fd)
    except OSError as exc:
        raise _path_error(exc, shown) from None


def _open_file(dir_fd: int, name: str, shown: str, flags: int) -> int:
    try:
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o644,
                     dir_fd=dir_fd)
    except FileNotFoundError:
        raise ToolError(f"no such file: {shown}") from None
    except OSError as exc:
        raise _path_error(exc, shown) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ToolError(f"{shown} is not a regular file")
    return fd


def _path_error(exc: OSError, shown: str) -> ToolError:
    if exc.errno in (errno.ELOOP, errno.EMLINK):
        return ToolError(f"{shown} is a symbolic link; links are not followed")
    if exc.errno == errno.ENOTDIR:
        return ToolError(f"{shown} is not a directory (or is a link)")
    if exc.errno == errno.EISDIR:
        return ToolError(f"{shown} is a directory")
    return ToolError(f"{shown}: {exc.strerror}")


def _list_into(fd: int, prefix: str, lines: list[str], depth: int) -> None:
    entries = sorted(os.scandir(fd), key=lambda e: e.name)
    for entry in entries:
        if len(lines) > MAX_LIST_ENTRIES:
            return
        info = entry.stat(follow_symlinks=False)
        name = prefix + entry.name
        if stat.S_ISDIR(info.st_mode):
            lines.append(name + "/")
            if depth > 1:
                with contextlib.suppress(OSError):
                    sub = os.open(entry.name, _DIR_FLAGS, dir_fd=fd)
                    try:
                        _list_into(sub, name + "/", lines, depth - 1)
                    finally:
                        os.close(sub)
        elif stat.S_ISLNK(info.st_mode):
            lines.append(f"{name} (symbolic link, not followed)")
        else:
            lines.append(f"{name} ({info.st_size} bytes)")


def make_file_tools(ctx: ToolContext) -> list[FunctionTool]:
    workspace = Workspace(ctx.workspace)

    def list_files(path: str = ".", recursive: bool = False) -> str:
        """List the files and folders in your workspace.

        Args:
            path: a folder inside the workspace; "." is the workspace itself.
            recursive: also list what is inside sub-folders.
        """
        return workspace.list(path, recursive)

    def read_file(path: str) -> str:
        """Read a text file from your workspace.

        Args:
            path: the file, relative to the workspace (for example "notes/todo.txt").
        """
        return workspace.read(path)

    def write_file(path: str, content: str, append: bool = False) -> str:
        """Write a text file in your workspace, creating folders as needed.

        Args:
            path: the file, relative to the workspace (for example "notes/todo.txt").
            content: the text to write.
            append: add to the end of the file instead of replacing it.
        """
        return workspace.write(path, content, append)

    return [FunctionTool(list_files), FunctionTool(read_file),
            FunctionTool(write_file, side_effects=True)]
