"""Where each account's tool files live, keyed by the account's id (never its name).

- an account's workspace is ``<home>/workspaces/_<id>`` (``_`` + digits can never have been a
  folder named after a user, so it cannot collide with folders of the old layout);
- ``<home>/workspaces/local`` belongs to no account: tools run without one (``openwen run``'s
  agent, API callers without a key where an admin allows server tools);
- deleting an account deletes its workspace (:func:`delete_workspace`);
- :func:`migrate_named_workspaces` moves folders of the old layout (named after the user, or
  ``user-<id>``) to the id-keyed folder once, where exactly one account can own the folder, and
  logs what it moved and what it left.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from openwen.config import Settings

log = logging.getLogger(__name__)

NO_ACCOUNT = "local"
LAYOUT_MARKER = ".keyed-by-account-id"  # in the root once the old folders were migrated
_OLD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")


def workspace_name(user_id: int | None) -> str:
    """The workspace folder name of account ``user_id`` (``local`` without an account)."""
    if user_id is None:
        return NO_ACCOUNT
    if isinstance(user_id, bool) or not isinstance(user_id, int) or user_id < 0:
        raise ValueError(f"not an account id: {user_id!r}")
    return f"_{user_id}"


def workspaces_root(settings: Settings) -> Path:
    return settings.home / "workspaces"


def workspace_dir(settings: Settings, user_id: int | None) -> Path:
    return workspaces_root(settings) / workspace_name(user_id)


def delete_workspace(settings: Settings, user_id: int) -> bool:
    """Delete account ``user_id``'s workspace folder and everything in it (blocking); whether
    there was one. Symbolic links inside are removed, never followed."""
    path = workspace_dir(settings, user_id)
    if path.is_symlink():
        path.unlink()
        return True
    if not path.is_dir():
        return False
    shutil.rmtree(path)
    log.info("deleted the workspace of account %s (%s)", user_id, path)
    return True


def _old_names(user_id: int, username: str) -> list[str]:
    """Folder names the old layout gave this account (its name, else ``user-<id>``)."""
    if _OLD_NAME.match(username) and ".." not in username:
        return [username]
    return [f"user-{user_id}"]


def migrate_named_workspaces(settings: Settings, accounts: Iterable[tuple[int, str]]) -> int:
    """Move each account's old name-keyed folder to its id-keyed one, once (blocking).

    A folder moves only when exactly one account claims it and the id-keyed folder does not
    exist yet; a folder two accounts could claim (``user-5`` named after one, made for the
    other) stays where it is, with a warning. Runs once per home (a marker file records it,
    so a later ``local`` folder of account-less tools never moves into an account named
    ``local``). Returns how many folders moved.
    """
    root = workspaces_root(settings)
    if not root.is_dir() or (root / LAYOUT_MARKER).exists():
        return 0
    accounts = list(accounts)
    claims: dict[str, list[int]] = {}
    for user_id, username in accounts:
        for name in _old_names(user_id, username):
            claims.setdefault(name, []).append(user_id)
    moved = 0
    for name, owners in sorted(claims.items()):
        old = root / name
        if not old.is_dir() or old.is_symlink():
            continue
        if len(owners) > 1:
            log.warning("workspace folder %s could belong to accounts %s; left where it is",
                        old, ", ".join(map(str, owners)))
            continue
        new = root / workspace_name(owners[0])
        if new.exists():
            continue
        os.rename(old, new)
        moved += 1
        log.info("moved workspace %s to %s (workspaces are now keyed by account id)", old, new)
    (root / LAYOUT_MARKER).write_text("workspaces/_<account id>; see the README\n")
    return moved
