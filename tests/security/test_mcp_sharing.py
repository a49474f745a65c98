"""MCP servers under ``openwen serve`` are per-user by default or explicitly shared, and may be
restricted to some accounts (issue 10, finding 12b), with real stdio MCP servers: a per-user
filesystem-like server shows each user only their own workspace, in their own process, started
on first call and stopped when idle; a restricted server's tools reach only its users."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from openwen.config import Settings, load_settings
from openwen.errors import ConfigError
from openwen.storage import Storage, UserRecord
from openwen.tools.mcp import mcp_servers
from openwen.tools.shared import SharedTools, workspace_name
from openwen.tools.workspaces import workspace_dir

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

FOLDER_SERVER = str(Path(__file__).parent / "fixtures" / "mcp_folder_server.py")


def configured(tmp_path: Path, **servers: dict[str, Any]) -> Settings:
    return load_settings(home=str(tmp_path / "home"), mcp={"servers": servers}).settings


def folder_server(folder: str, **extra: Any) -> dict[str, Any]:
    return {"command": sys.executable, "args": [FOLDER_SERVER, folder], **extra}


@pytest.fixture
def accounts(tmp_path: Path) -> tuple[UserRecord, UserRecord]:
    storage = Storage.open(f"sqlite:///{tmp_path / 'users.db'}")
    try:
        return storage.users.create("alice", None), storage.users.create("bob", None)
    finally:
        storage.close()


@contextlib.asynccontextmanager
async def started(settings: Settings) -> AsyncIterator[SharedTools]:
    tools = SharedTools(settings)
    await tools.start()
    try:
        yield tools
    finally:
        await tools.aclose()


async def call(tools: SharedTools, user: UserRecord | None, name: str) -> str:
    registry = tools.registry(workspace_name(user.username if user else None,
                                             user.id if user else None), user)
    output = await registry.call(name, {})
    assert output.error is None, output.text
    return output.text


async def test_a_per_user_server_serves_each_user_their_own_folder_in_their_own_process(
        tmp_path: Path, accounts: tuple[UserRecord, UserRecord]) -> None:
    settings = configured(tmp_path, files=folder_server("{workspace}", idle_seconds=600))
    alice, bob = accounts
    for user, name in ((alice, "alice-diary.txt"), (bob, "bob-bank.txt")):
        workspace_dir(settings, user.id).mkdir(parents=True)
        (workspace_dir(settings, user.id) / name).write_text("private")
    async with started(settings) as tools:
        assert tools.pool is not None and tools.pool.running() == {"files": []}  # lazily
        assert await call(tools, alice, "files__list_names") == "alice-diary.txt"
        assert await call(tools, bob, "files__list_names") == "bob-bank.txt"
        pids = {await call(tools, u, "files__process_id") for u in (alice, bob)}
        assert len(pids) == 2
        assert tools.pool.running() == {"files": sorted([alice.id, bob.id])}
        # without an account, no per-user server at all
        assert "files__list_names" not in tools.registry("local", None)


async def test_an_idle_instance_stops_and_the_next_call_starts_a_new_one(
        tmp_path: Path, accounts: tuple[UserRecord, UserRecord]) -> None:
    settings = configured(tmp_path, files=folder_server("{workspace}", idle_seconds=0.2))
    alice, _ = accounts
    async with started(settings) as tools:
        assert tools.pool is not None
        first = await call(tools, alice, "files__process_id")
        assert await call(tools, alice, "files__list_names") == "(empty)"  # made for alice
        for _ in range(100):  # the reaper runs every 0.5 s here; a generous bound
            if tools.pool.running() == {"files": []}:
                break
            await asyncio.sleep(0.1)
        assert tools.pool.running() == {"files": []}
        assert await call(tools, alice, "files__process_id") != first


async def test_users_restricts_a_server_to_those_accounts(
        tmp_path: Path, accounts: tuple[UserRecord, UserRecord]) -> None:
    admin_files = tmp_path / "admin-notes"
    admin_files.mkdir()
    (admin_files / "passwords.txt").write_text("hunter2")
    settings = configured(
        tmp_path,
        notes=folder_server(str(admin_files), shared=True, users=["alice"]),
        mine=folder_server("{workspace}", users=["alice"]))
    alice, bob = accounts
    async with started(settings) as tools:
        assert await call(tools, alice, "notes__list_names") == "passwords.txt"
        bobs = tools.registry(workspace_name(bob.username, bob.id), bob)
        assert "notes__list_names" not in bobs and "mine__list_names" not in bobs
        assert "calculator" in bobs  # the built-ins stay
        assert "notes__list_names" not in tools.registry("local", None)


async def test_a_shared_server_is_one_instance_for_everyone(
        tmp_path: Path, accounts: tuple[UserRecord, UserRecord]) -> None:
    public = tmp_path / "public"
    public.mkdir()
    settings = configured(tmp_path, public=folder_server(str(public), shared=True))
    alice, bob = accounts
    async with started(settings) as tools:
        pids = {await call(tools, u, "public__process_id") for u in (alice, bob, None)}
        assert len(pids) == 1
        assert tools.pool is not None and tools.pool.running() == {}


def test_the_workspace_placeholder_is_refused_in_a_shared_server(tmp_path: Path) -> None:
    settings = configured(tmp_path, bad=folder_server("{workspace}", shared=True))
    with pytest.raises(ConfigError, match=r"\{workspace\} only works in a per-user server"):
        mcp_servers(settings)
    with pytest.raises(ConfigError, match="users"):
        mcp_servers(configured(tmp_path, bad=folder_server("/x", users="alice")))
