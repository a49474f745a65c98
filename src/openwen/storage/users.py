"""Users (accounts) and per-user settings.

``UserRepo`` is the administration side: it is not scoped by a caller's user id, so the API layer
must check ``is_admin`` before exposing list/disable/delete. Usernames are case-insensitive: they
are stored lower-cased, and lookups lower-case their argument. Password hashing happens in the
auth layer; this layer only stores the hash (``None`` means the account has no password).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from openwen.errors import InvalidRequestError, NotFoundError
from openwen.storage.base import Repository, plain_json, rowcount, utcnow
from openwen.storage.models import User, UserSetting
from openwen.storage.records import UserRecord

USERNAME_RE = re.compile(r"[a-z0-9][a-z0-9_.@-]{0,63}")
SETTING_KEY_RE = re.compile(r"[A-Za-z0-9_.:-]{1,100}")


def normalise_username(username: str) -> str:
    name = username.strip().lower() if isinstance(username, str) else ""
    if not USERNAME_RE.fullmatch(name):
        raise InvalidRequestError(
            "a username is 1-64 characters: letters, digits and _ . @ -, "
            "starting with a letter or digit",
            param="username",
            code="invalid_username",
        )
    return name


def user_not_found(user: object) -> NotFoundError:
    return NotFoundError(f"user {user!r} not found", param="user")


class UserRepo(Repository):
    def create(
        self, username: str, password_hash: str | None = None, *, is_admin: bool = False
    ) -> UserRecord:
        name = normalise_username(username)
        try:
            with self.db.write() as s:
                if s.scalar(select(User.id).where(User.username == name)) is not None:
                    raise _taken(name)
                row = User(username=name, password_hash=password_hash, is_admin=is_admin)
                s.add(row)
                s.flush()
                return UserRecord.of(row)
        except IntegrityError as exc:  # a concurrent create of the same name
            raise _taken(name) from exc

    def get(self, user_id: int) -> UserRecord:
        with self.db.read() as s:
            row = s.get(User, user_id)
            if row is None:
                raise user_not_found(user_id)
            return UserRecord.of(row)

    def get_by_name(self, username: str) -> UserRecord | None:
        """The user called ``username`` (any case), or None."""
        name = username.strip().lower() if isinstance(username, str) else ""
        with self.db.read() as s:
            row = s.scalar(select(User).where(User.username == name))
            return UserRecord.of(row) if row else None

    def password_hash(self, user_id: int) -> str | None:
        with self.db.read() as s:
            row = s.get(User, user_id)
            if row is None:
                raise user_not_found(user_id)
            return row.password_hash

    def set_password_hash(self, user_id: int, password_hash: str | None) -> None:
        self._update(user_id, password_hash=password_hash)

    def list_all(self) -> list[UserRecord]:
        with self.db.read() as s:
            return [UserRecord.of(r) for r in s.scalars(select(User).order_by(User.username))]

    def count(self) -> int:
        with self.db.read() as s:
            return int(s.scalar(select(func.count()).select_from(User)) or 0)

    def set_disabled(self, user_id: int, disabled: bool = True) -> UserRecord:
        """A disabled user's API keys and login sessions stop working (and work again when
        re-enabled); their data stays."""
        return self._update(user_id, disabled=disabled)

    def disable(self, user_id: int) -> UserRecord:
        return self.set_disabled(user_id, True)

    def set_admin(self, user_id: int, is_admin: bool) -> UserRecord:
        return self._update(user_id, is_admin=is_admin)

    def delete(self, user_id: int) -> None:
        """Delete the user and, by cascade, their keys, sessions, settings and conversations."""
        with self.db.write() as s:
            if rowcount(s.execute(delete(User).where(User.id == user_id))) == 0:
                raise user_not_found(user_id)

    def _update(self, user_id: int, **values: Any) -> UserRecord:
        with self.db.write() as s:
            row = s.get(User, user_id)
            if row is None:
                raise user_not_found(user_id)
            for name, value in values.items():
                setattr(row, name, value)
            s.flush()
            return UserRecord.of(row)


def _taken(name: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"the username {name!r} is taken", param="username", code="username_taken"
    )


class UserSettingsRepo(Repository):
    """Key/value settings of one user; values are any JSON value."""

    def get_all(self, user_id: int) -> dict[str, Any]:
        with self.db.read() as s:
            rows = s.scalars(select(UserSetting).where(UserSetting.user_id == user_id))
            return {r.key: r.value for r in rows}

    def get(self, user_id: int, key: str, default: Any = None) -> Any:
        with self.db.read() as s:
            row = s.get(UserSetting, (user_id, key))
            return default if row is None else row.value

    def set(self, user_id: int, key: str, value: Any) -> None:
        if not isinstance(key, str) or not SETTING_KEY_RE.fullmatch(key):
            raise InvalidRequestError(
                "a setting key is 1-100 characters: letters, digits and _ . : -", param="key"
            )
        try:
            value = plain_json(value)
        except (TypeError, ValueError) as exc:
            raise InvalidRequestError(f"setting {key!r} is not JSON: {exc}", param=key) from exc
        values = {"user_id": user_id, "key": key, "value": value, "updated_at": utcnow()}
        with self.db.write() as s:
            if s.get(User, user_id) is None:
                raise user_not_found(user_id)
            dialect = postgresql if self.db.dialect == "postgresql" else sqlite
            stmt = dialect.insert(UserSetting).values(**values)
            stmt = stmt.on_conflict_do_update(
                index_elements=["user_id", "key"],
                set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
            )
            s.execute(stmt)

    def delete(self, user_id: int, key: str) -> bool:
        """Remove a setting; False when it was not set."""
        with self.db.write() as s:
            result = s.execute(
                delete(UserSetting).where(UserSetting.user_id == user_id, UserSetting.key == key)
            )
            return rowcount(result) > 0
