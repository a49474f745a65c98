"""What built-in tools need to know about where they run: settings and the user they act for."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from openwen.config import Settings

_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")


@dataclass(frozen=True)
class ToolContext:
    settings: Settings
    user: str = "local"

    def __post_init__(self) -> None:
        if not _USER.match(self.user) or ".." in self.user:
            raise ValueError(f"user name {self.user!r} cannot name a workspace directory")

    @property
    def workspace(self) -> Path:
        """The user's file workspace: ``<home>/workspaces/<user>``."""
        return self.settings.home / "workspaces" / self.user
