"""The per-user workspace: paths stay inside, links are never followed, sizes are capped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from openwen.config import Settings
from openwen.tools.builtin import files
from openwen.tools.builtin.files import make_file_tools
from openwen.tools.context import ToolContext
from openwen.tools.registry import ToolRegistry


@pytest.fixture
def ctx(settings: Settings) -> ToolContext:
    return ToolContext(settings, user="alice")


@pytest.fixture
def tools(ctx: ToolContext) -> ToolRegistry:
    return ToolRegistry(make_file_tools(ctx))


async def test_write_list_read_in_the_users_workspace(tools: ToolRegistry, ctx: ToolContext,
                                                      settings: Settings) -> None:
    out = await tools.call("write_file", {"path": "notes/todo.txt", "content": "milk\n"})
    assert out.error is None and "5 bytes" in out.text
    await tools.call("write_file", {"path": "notes/todo.txt", "content": "eggs\n",
                                    "append": True})
    assert ctx.workspace == settings.home / "workspaces" / "alice"
    assert (ctx.workspace / "notes" / "todo.txt").read_text() == "milk\neggs\n"
    assert (await tools.call("read_file", {"path": "/notes/./todo.txt"})).text == "milk\neggs\n"
    listing = (await tools.call("list_files", {"recursive": True})).text
    assert "notes/" in listing and "notes/todo.txt (10 bytes)" in listing
    bob = ToolRegistry(make_file_tools(ToolContext(settings, user="bob")))
    assert (await bob.call("read_file", {"path": "notes/todo.txt"})).error is not None


@pytest.mark.parametrize("path", ["../alice2/x.txt", "notes/../../x.txt", ".."])
async def test_dot_dot_is_refused(tools: ToolRegistry, path: str) -> None:
    for name, args in (("read_file", {"path": path}), ("list_files", {"path": path}),
                       ("write_file", {"path": path, "content": "x"})):
        out = await tools.call(name, args)
        assert out.error == "tool_error" and "'..'" in out.text


async def test_symlinks_never_lead_out(tools: ToolRegistry, ctx: ToolContext,
                                       tmp_path: Path) -> None:
    secret_dir = tmp_path / "outside"
    secret_dir.mkdir()
    (secret_dir / "secret.txt").write_text("top secret")
    ctx.workspace.mkdir(parents=True)
    os.symlink(secret_dir, ctx.workspace / "door")
    os.symlink(secret_dir / "secret.txt", ctx.workspace / "note.txt")

    reads = [await tools.call("read_file", {"path": "note.txt"}),
             await tools.call("read_file", {"path": "door/secret.txt"}),
             await tools.call("list_files", {"path": "door"})]
    for out in reads:
        assert out.error is not None
        assert "top secret" not in out.text and "secret.txt" not in out.text
    write = await tools.call("write_file", {"path": "door/new.txt", "content": "x"})
    overwrite = await tools.call("write_file", {"path": "note.txt", "content": "x"})
    assert write.error and overwrite.error
    assert sorted(p.name for p in secret_dir.iterdir()) == ["secret.txt"]
    assert (secret_dir / "secret.txt").read_text() == "top secret"
    listing = (await tools.call("list_files", {"recursive": True})).text
    assert "door (symbolic link, not followed)" in listing


async def test_sizes_are_capped(tools: ToolRegistry, ctx: ToolContext,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "MAX_WRITE_BYTES", 100)
    monkeypatch.setattr(files, "MAX_READ_BYTES", 50)
    monkeypatch.setattr(files, "MAX_WORKSPACE_BYTES", 250)
    too_big = await tools.call("write_file", {"path": "a.txt", "content": "x" * 101})
    assert too_big.error and "at most 100" in too_big.text
    for name in ("a.txt", "b.txt"):
        assert (await tools.call("write_file", {"path": name, "content": "y" * 100})).error is None
    over_quota = await tools.call("write_file", {"path": "c.txt", "content": "z" * 100})
    assert over_quota.error and "quota" in over_quota.text
    read = (await tools.call("read_file", {"path": "a.txt"})).text
    assert read.startswith("y" * 50) and "truncated" in read


async def test_binary_and_missing_files(tools: ToolRegistry, ctx: ToolContext) -> None:
    ctx.workspace.mkdir(parents=True)
    (ctx.workspace / "blob.bin").write_bytes(b"\x00\x01\x02")
    assert "binary" in (await tools.call("read_file", {"path": "blob.bin"})).text
    assert "no such file" in (await tools.call("read_file", {"path": "nope.txt"})).text
    assert "give a file path" in (await tools.call("read_file", {"path": "."})).text
    (ctx.workspace / "folder").mkdir()
    assert "not a regular file" in (await tools.call("read_file", {"path": "folder"})).text


def test_user_names_cannot_escape(settings: Settings) -> None:
    for bad in ("../root", "a/b", "", ".hidden", "x" * 200):
        with pytest.raises(ValueError):
            ToolContext(settings, user=bad)


def test_write_is_the_side_effecting_one(ctx: ToolContext) -> None:
    flags = {t.name: t.side_effects for t in make_file_tools(ctx)}
    assert flags == {"list_files": False, "read_file": False, "write_file": True}
