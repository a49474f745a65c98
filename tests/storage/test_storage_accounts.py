"""Users, per-user settings, API keys and login sessions."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select

from openwen.errors import InvalidRequestError, NotFoundError
from openwen.storage import Storage, UserRecord
from openwen.storage.models import ApiKey, Base, LoginSession


def test_create_and_get_users(storage: Storage) -> None:
    user = storage.users.create("  Alice ", "argon2-hash", is_admin=True)
    assert user.username == "alice"
    assert user.is_admin and not user.disabled and user.has_password
    assert user.created_at.tzinfo is not None
    assert storage.users.get_by_name("ALICE") == user
    assert storage.users.get(user.id) == user
    assert storage.users.password_hash(user.id) == "argon2-hash"
    assert storage.users.get_by_name("nobody") is None


def test_usernames_are_unique_case_insensitively(storage: Storage) -> None:
    storage.users.create("alice")
    with pytest.raises(InvalidRequestError) as info:
        storage.users.create("ALICE")
    assert info.value.code == "username_taken"
    assert storage.users.count() == 1


@pytest.mark.parametrize("name", ["", "  ", "-dash", "a" * 65, "has space", "semi;colon", "名字"])
def test_invalid_usernames_are_rejected(storage: Storage, name: str) -> None:
    with pytest.raises(InvalidRequestError):
        storage.users.create(name)
    assert storage.users.count() == 0


def test_list_count_disable_and_delete(storage: Storage) -> None:
    bob = storage.users.create("bob")
    alice = storage.users.create("alice")
    assert [u.username for u in storage.users.list_all()] == ["alice", "bob"]
    assert storage.users.count() == 2
    assert storage.users.disable(bob.id).disabled
    assert storage.users.get(bob.id).disabled
    assert not storage.users.set_disabled(bob.id, False).disabled
    assert storage.users.set_admin(alice.id, True).is_admin
    storage.users.set_password_hash(alice.id, None)
    assert not storage.users.get(alice.id).has_password
    storage.users.delete(bob.id)
    assert storage.users.count() == 1
    with pytest.raises(NotFoundError):
        storage.users.get(bob.id)
    with pytest.raises(NotFoundError):
        storage.users.delete(bob.id)
    with pytest.raises(NotFoundError):
        storage.users.disable(bob.id)


def test_deleting_a_user_deletes_everything_of_theirs(storage: Storage, alice: UserRecord) -> None:
    chat = storage.conversations.create(alice.id, "mine")
    storage.messages.add(alice.id, chat.id, parent_id=None, role="user", content="hello there")
    storage.api_keys.create(alice.id, "laptop")
    storage.sessions.create(alice.id)
    storage.settings.set(alice.id, "theme", "dark")
    storage.users.delete(alice.id)
    with storage.db.read() as s:
        for table in ("conversations", "messages", "api_keys", "sessions", "user_settings"):
            rows = s.execute(select(1).select_from(Base.metadata.tables[table])).first()
            assert rows is None, table


def test_user_settings(storage: Storage, alice: UserRecord, bob: UserRecord) -> None:
    assert storage.settings.get_all(alice.id) == {}
    storage.settings.set(alice.id, "theme", "dark")
    storage.settings.set(alice.id, "sampling", {"temperature": 0.7, "top_p": [0.9]})
    storage.settings.set(alice.id, "theme", "light")
    storage.settings.set(bob.id, "theme", "dark")
    assert storage.settings.get_all(alice.id) == {
        "theme": "light",
        "sampling": {"temperature": 0.7, "top_p": [0.9]},
    }
    assert storage.settings.get(alice.id, "missing", "default") == "default"
    assert storage.settings.delete(alice.id, "theme") is True
    assert storage.settings.delete(alice.id, "theme") is False
    assert storage.settings.get(bob.id, "theme") == "dark"
    with pytest.raises(InvalidRequestError):
        storage.settings.set(alice.id, "bad key!", 1)
    with pytest.raises(InvalidRequestError):
        storage.settings.set(alice.id, "nan", float("nan"))


def test_api_key_secret_is_returned_once_and_only_its_hash_stored(
    storage: Storage, alice: UserRecord
) -> None:
    new = storage.api_keys.create(alice.id, " laptop ")
    assert new.secret.startswith("sk-ow-") and len(new.secret) > 40
    assert new.key.name == "laptop"
    assert new.secret.startswith(new.key.prefix) and len(new.key.prefix) < 16
    with storage.db.read() as s:
        row = s.scalars(select(ApiKey)).one()
        assert row.key_hash == hashlib.sha256(new.secret.encode()).hexdigest()
        assert new.secret not in (row.key_hash, row.prefix, row.name)
    assert "secret" not in repr(storage.api_keys.list_for(alice.id))


def test_api_key_verify(storage: Storage, alice: UserRecord) -> None:
    new = storage.api_keys.create(alice.id, "cli")
    assert new.key.last_used_at is None
    found = storage.api_keys.verify(new.secret)
    assert found is not None
    user, key = found
    assert user.id == alice.id and key.id == new.key.id
    assert key.last_used_at is not None
    for wrong in ["", new.secret + "x", new.secret[:-1], new.key.prefix, "x" * 10_000]:
        assert storage.api_keys.verify(wrong) is None


def test_revoked_keys_and_disabled_users_do_not_verify(storage: Storage, alice: UserRecord) -> None:
    first = storage.api_keys.create(alice.id, "one")
    second = storage.api_keys.create(alice.id, "two")
    revoked = storage.api_keys.revoke(alice.id, first.key.id)
    assert revoked.revoked_at is not None and not revoked.active
    assert storage.api_keys.revoke(alice.id, first.key.id).revoked_at == revoked.revoked_at
    assert storage.api_keys.verify(first.secret) is None
    assert storage.api_keys.verify(second.secret) is not None
    storage.users.disable(alice.id)
    assert storage.api_keys.verify(second.secret) is None
    storage.users.set_disabled(alice.id, False)
    assert storage.api_keys.verify(second.secret) is not None


def test_list_keys(storage: Storage, alice: UserRecord, bob: UserRecord) -> None:
    a1 = storage.api_keys.create(alice.id, "a1")
    a2 = storage.api_keys.create(alice.id, "a2")
    storage.api_keys.create(bob.id, "b1")
    storage.api_keys.revoke(alice.id, a1.key.id)
    assert [k.name for k in storage.api_keys.list_for(alice.id)] == ["a2", "a1"]
    assert [k.id for k in storage.api_keys.list_for(alice.id, include_revoked=False)] == [a2.key.id]
    assert storage.api_keys.get(alice.id, a2.key.id).name == "a2"
    with pytest.raises(InvalidRequestError):
        storage.api_keys.create(alice.id, "  ")


def test_login_sessions(storage: Storage, alice: UserRecord) -> None:
    login = storage.sessions.create(alice.id, ttl=timedelta(hours=1))
    assert len(login.token) >= 40 and len(login.session.csrf_token) >= 40
    found = storage.sessions.get(login.token)
    assert found is not None
    user, session = found
    assert user.id == alice.id and session.csrf_token == login.session.csrf_token
    with storage.db.read() as s:
        stored = s.scalars(select(LoginSession.id)).one()
    assert stored == hashlib.sha256(login.token.encode()).hexdigest() != login.token
    assert storage.sessions.get(login.token + "x") is None
    storage.users.disable(alice.id)
    assert storage.sessions.get(login.token) is None
    storage.users.set_disabled(alice.id, False)
    assert storage.sessions.delete(login.token) is True
    assert storage.sessions.get(login.token) is None
    assert storage.sessions.delete(login.token) is False


def test_expired_sessions_are_refused_and_purged(storage: Storage, alice: UserRecord) -> None:
    expired = storage.sessions.create(alice.id, ttl=timedelta(seconds=-1))
    live = storage.sessions.create(alice.id)
    assert storage.sessions.get(expired.token) is None
    assert storage.sessions.purge_expired() == 1
    assert storage.sessions.get(live.token) is not None
    storage.sessions.create(alice.id)
    assert storage.sessions.delete_for_user(alice.id) == 2
    assert storage.sessions.get(live.token) is None
