"""Server-wide settings the admin changes from the web app (open registration, for now).

They are kept without a table of their own: as settings (``server.*`` keys) of the oldest admin
account. When that account is removed, the next oldest admin's values apply, and with no value
set the defaults do (registration closed), so losing the value always fails closed. The web app's
own per-user settings API never writes ``server.*`` keys.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from openwen.storage.base import Repository
from openwen.storage.models import User
from openwen.storage.users import UserSettingsRepo

PREFIX = "server."
DEFAULTS: dict[str, Any] = {"open_registration": False}


class InstanceSettingsRepo(Repository):
    def _owner(self) -> int | None:
        with self.db.read() as s:
            query = select(User.id).where(User.is_admin.is_(True)).order_by(User.id).limit(1)
            return s.scalar(query)

    def get(self, name: str) -> Any:
        owner = self._owner()
        default = DEFAULTS.get(name)
        if owner is None:
            return default
        return UserSettingsRepo(self.db).get(owner, PREFIX + name, default)

    def set(self, name: str, value: Any) -> None:
        """Set a server-wide value (there must be an admin to keep it)."""
        owner = self._owner()
        if owner is None:
            raise RuntimeError("server settings need an admin account")
        UserSettingsRepo(self.db).set(owner, PREFIX + name, value)

    def all(self) -> dict[str, Any]:
        return {name: self.get(name) for name in DEFAULTS}
