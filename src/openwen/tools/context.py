"""What built-in tools need to know about where they run: settings and the user they act for."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from openwen.config import Settings

_USER = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._@-]{0,127}|_[0-9]{1,19})$")


@dataclass(frozen=True)
class ToolContext:
    """``user`` names the workspace folder: ``_<account id>`` for an account (see
    :mod:`openwen.tools.workspaces`), ``local`` for tools run without one."""

    settings: Settings
    user: str = "local"

    def __post_init__(self) -> None:
        if not _USER.match(self.user) or ".." in self.user:
            raise ValueError(f"user name {self.user!r} cannot name a workspace directory")

    @property
    def workspace(self) -> Path:
        """The file workspace: ``<home>/workspaces/<user>``."""
        return self.settings.home / "workspaces" / self.user
