"""Accounts: first user is admin, argon2, cookies, CSRF, login rate limit, admin actions,
registration, single-user mode."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from webapp_helpers import PASSWORD, Signed, add_user, csrf_of, login, make_app, signup

from openwen.chat.service import ChatService
from openwen.config import Settings, load_settings
from openwen.errors import ConfigError
from openwen.server.app.ratelimit import LoginLimiter
from openwen.server.webapp import install


def test_first_user_becomes_admin_and_later_signups_are_closed(
    client: TestClient, app: FastAPI
) -> None:
    session = client.get("/api/session").json()
    assert session["user"] is None and session["first_user"] and session["signup_open"]
    headers = signup(client, "Alice")
    me = client.get("/api/session").json()["user"]
    assert me["username"] == "alice" and me["is_admin"] is True
    stored = app.state.webapp.storage.users.password_hash(me["id"])
    assert stored.startswith("$argon2id$") and PASSWORD not in stored

    other = TestClient(app)
    assert other.get("/api/session").json()["signup_open"] is False
    r = other.post(
        "/api/auth/signup", json={"username": "eve", "password": PASSWORD}, headers=csrf_of(other)
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "signup_closed"

    # the admin opens registration: now anyone may sign up, as an ordinary user
    r = client.put("/api/admin/registration", json={"open": True}, headers=headers)
    assert r.json() == {"open": True}
    assert client.get("/api/admin/registration").json() == {"open": True}
    signup(other, "eve")
    assert other.get("/api/session").json()["user"]["is_admin"] is False


def test_session_cookie_flags(client: TestClient) -> None:
    r = client.post(
        "/api/auth/signup",
        json={"username": "alice", "password": PASSWORD},
        headers=csrf_of(client),
    )
    cookies = {c.split("=", 1)[0]: c.lower() for c in r.headers.get_list("set-cookie")}
    assert "httponly" in cookies["openwen_session"]
    assert "samesite=lax" in cookies["openwen_session"]
    assert "secure" not in cookies["openwen_session"]  # plain http on loopback
    assert "httponly" not in cookies["openwen_csrf"]  # the page reads it


def test_cookies_are_secure_over_https(app: FastAPI) -> None:
    with TestClient(app, base_url="https://testserver") as secure:
        r = secure.post(
            "/api/auth/signup",
            json={"username": "alice", "password": PASSWORD},
            headers=csrf_of(secure),
        )
        assert r.status_code == 201
        session_cookie = next(
            c for c in r.headers.get_list("set-cookie") if c.startswith("openwen_session=")
        )
        assert "secure" in session_cookie.lower()


def test_state_changes_need_the_csrf_token(alice: Signed) -> None:
    client = alice.client
    r = client.post("/api/conversations", json={})
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
    r = client.post("/api/conversations", json={}, headers={"X-CSRF-Token": "wrong"})
    assert r.status_code == 403
    assert client.get("/api/conversations").json()["total"] == 0  # nothing was created
    assert alice.post("/api/conversations", json={}).status_code == 201


def test_login_needs_the_double_submit_token(client: TestClient, alice: Signed) -> None:
    other = TestClient(client.app)
    r = other.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
    assert r.status_code == 403
    login(other, "alice")


def test_logout_ends_the_session(alice: Signed) -> None:
    assert alice.post("/api/auth/logout").status_code == 200
    assert alice.client.get("/api/session").json()["user"] is None
    assert alice.client.get("/api/conversations").status_code == 401


def test_wrong_password_and_rate_limit(app: FastAPI, alice: Signed) -> None:
    guesser = TestClient(app)
    for _ in range(5):  # each attempt is counted before its password is checked
        r = guesser.post(
            "/api/auth/login",
            json={"username": "alice", "password": "nope-nope"},
            headers=csrf_of(guesser),
        )
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_credentials"
    r = guesser.post(
        "/api/auth/login",
        json={"username": "alice", "password": "nope-nope"},
        headers=csrf_of(guesser),
    )
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    # locked out even with the right password, until the window passes
    r = guesser.post(
        "/api/auth/login",
        json={"username": "alice", "password": PASSWORD},
        headers=csrf_of(guesser),
    )
    assert r.status_code == 429
    # an unknown user fails the same way as a wrong password
    r = guesser.post(
        "/api/auth/login",
        json={"username": "nobody", "password": PASSWORD},
        headers=csrf_of(guesser),
    )
    assert r.status_code == 401


def test_limiter_window_and_success_reset() -> None:
    now = [1000.0]
    limiter = LoginLimiter(max_failures=3, window=60, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.attempt("Alice", "1.2.3.4")[0] == 0
    assert limiter.attempt("alice", "1.2.3.4") == (60, 0.0)
    assert limiter.attempt("alice", "5.6.7.8")[0] == 0  # another address is not locked
    now[0] += 30
    assert limiter.attempt("alice", "1.2.3.4")[0] == 30
    now[0] += 31
    wait, when = limiter.attempt("alice", "1.2.3.4")
    assert wait == 0
    limiter.succeeded("alice", "1.2.3.4", when)
    for _ in range(3):  # a success starts the pair afresh
        assert limiter.attempt("alice", "1.2.3.4")[0] == 0


def test_limiter_locks_a_username_across_addresses() -> None:
    now = [1000.0]
    limiter = LoginLimiter(max_failures=3, max_per_username=5, window=60, clock=lambda: now[0])
    for i in range(5):
        assert limiter.attempt("alice", f"10.0.0.{i}")[0] == 0
    assert limiter.attempt("alice", "10.0.0.99")[0] == 60  # a fresh address does not help
    # a refused attempt counts nowhere (probing with limit 1 records one, so probe last)
    assert limiter.store.take("login:pair:alice\x1f" "10.0.0.99", 1, 60, now[0]) == 0
    assert limiter.store.take("login:addr:10.0.0.99", 1, 60, now[0]) == 0
    assert limiter.attempt("bob", "10.0.0.98")[0] == 0  # other names are not locked


def test_limiter_signups_per_address() -> None:
    now = [1000.0]
    limiter = LoginLimiter(max_signups=2, signup_window=600, clock=lambda: now[0])
    assert limiter.signup("1.2.3.4") == 0 and limiter.signup("1.2.3.4") == 0
    assert limiter.signup("1.2.3.4") == 600
    assert limiter.signup("5.6.7.8") == 0
    now[0] += 600
    assert limiter.signup("1.2.3.4") == 0


def test_admin_adds_disables_and_removes_users(app: FastAPI, alice: Signed) -> None:
    bob = add_user(alice.client, alice.headers, "bob")
    listed = alice.get("/api/admin/users").json()["users"]
    assert [u["username"] for u in listed] == ["alice", "bob"]
    other = TestClient(app)
    bob_headers = login(other, "bob")
    assert other.get("/api/admin/users").status_code == 403
    assert (
        other.post(
            "/api/admin/users", json={"username": "x", "password": PASSWORD}, headers=bob_headers
        ).status_code
        == 403
    )

    r = alice.patch(f"/api/admin/users/{bob['id']}", json={"disabled": True})
    assert r.json()["user"]["disabled"] is True
    assert other.get("/api/conversations").status_code == 401  # signed out at once
    r = other.post(
        "/api/auth/login", json={"username": "bob", "password": PASSWORD}, headers=csrf_of(other)
    )
    assert r.status_code == 401
    alice.patch(f"/api/admin/users/{bob['id']}", json={"disabled": False})
    login(other, "bob")

    me = alice.get("/api/session").json()["user"]
    r = alice.patch(f"/api/admin/users/{me['id']}", json={"disabled": True})
    assert r.status_code == 400  # not yourself
    assert alice.delete(f"/api/admin/users/{me['id']}").status_code == 400
    assert alice.delete(f"/api/admin/users/{bob['id']}").json() == {"ok": True}
    assert other.get("/api/conversations").status_code == 401
    assert [u["username"] for u in alice.get("/api/admin/users").json()["users"]] == ["alice"]
    assert alice.delete(f"/api/admin/users/{bob['id']}").status_code == 404


def test_weak_passwords_and_bad_usernames_are_refused(client: TestClient) -> None:
    r = client.post(
        "/api/auth/signup", json={"username": "alice", "password": "short"}, headers=csrf_of(client)
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "weak_password"
    r = client.post(
        "/api/auth/signup",
        json={"username": "no spaces!", "password": PASSWORD},
        headers=csrf_of(client),
    )
    assert r.status_code == 400
    assert client.get("/api/session").json()["first_user"] is True  # nothing stored


def test_password_change(alice: Signed) -> None:
    r = alice.post(
        "/api/auth/password",
        json={"current_password": "wrong-one", "new_password": "a new password"},
    )
    assert r.status_code == 403
    r = alice.post(
        "/api/auth/password", json={"current_password": PASSWORD, "new_password": "a new password"}
    )
    assert r.status_code == 200
    other = TestClient(alice.client.app)
    r = other.post(
        "/api/auth/login", json={"username": "alice", "password": PASSWORD}, headers=csrf_of(other)
    )
    assert r.status_code == 401
    login(other, "alice", "a new password")


def test_single_user_mode_needs_no_login_but_a_loopback_host(
    tmp_path: object, scripted_service: ChatService
) -> None:
    settings = load_settings(home=str(tmp_path), single_user=True).settings
    with TestClient(
        make_app(settings, scripted_service), base_url="http://127.0.0.1:8800"
    ) as local:
        session = local.get("/api/session").json()
        assert session["single_user"] and session["user"]["username"] == "local"
        assert session["user"]["is_admin"]
        headers = {"X-CSRF-Token": session["csrf_token"]}
        assert local.post("/api/conversations", json={}).status_code == 403  # CSRF still on
        assert local.post("/api/conversations", json={}, headers=headers).status_code == 201
        r = local.post(
            "/api/auth/login", json={"username": "x", "password": PASSWORD}, headers=headers
        )
        assert r.status_code == 400
        # a page on another host name (DNS rebinding) is refused
        r = local.get("/api/conversations", headers={"Host": "evil.example:8800"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "not_loopback"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::"])
def test_single_user_mode_is_refused_off_loopback(
    host: str, settings: Settings, scripted_service: ChatService
) -> None:
    risky = settings.model_copy(update={"single_user": True, "host": host})
    with pytest.raises(ConfigError, match="loopback"):
        install(FastAPI(), risky, scripted_service)
