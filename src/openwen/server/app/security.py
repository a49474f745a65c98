"""Who is asking: session cookies, CSRF tokens, passwords, single-user mode.

- A login sets ``openwen_session`` (a random token; the store keeps its SHA-256), HttpOnly,
  SameSite=Lax, Secure when the page was served over https, for 30 days.
- CSRF: every state-changing request (not GET/HEAD/OPTIONS) must carry the header
  ``X-CSRF-Token``. Logged in, it must equal the session's CSRF token (the page gets it from
  ``GET /api/session`` or the readable ``openwen_csrf`` cookie); before login (sign-up, login) and
  in single-user mode it must equal the ``openwen_csrf`` cookie (double submit). Another site can
  neither read that cookie nor set the header.
- Passwords are hashed with argon2id (argon2-cffi's defaults: 64 MiB each) in worker threads,
  a few at once (:class:`~openwen.server.app.ratelimit.HashGate`); past a queue of
  ``MAX_WAITING_HASHES``, a request gets 503 rather than a place in the queue.
- Single-user mode (``single_user``): no login, every request acts as the local account. It is
  only allowed on a loopback address, and requests must name a loopback host (``Host`` header),
  which also defeats DNS-rebinding pages.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from openwen.errors import AuthenticationError, InvalidRequestError, PermissionDeniedError
from openwen.server.app.ratelimit import HashGate
from openwen.server.app.state import State, WebState
from openwen.server.auth import is_loopback
from openwen.storage import NewLoginSession, UserRecord

SESSION_COOKIE = "openwen_session"
CSRF_COOKIE = "openwen_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MIN_PASSWORD = 8
MAX_PASSWORD = 1024

hasher = PasswordHasher()
# verified against when the username is unknown, so both cases take as long
_DUMMY_HASH = hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class Viewer:
    """The signed-in user of a request, and the CSRF token their requests must carry."""

    user: UserRecord
    csrf_token: str
    session_token: str | None = None


# -- passwords -------------------------------------------------------------------------------


def check_password_rules(password: object) -> str:
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidRequestError(
            f"a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters long",
            param="password",
            code="weak_password",
        )
    return password


async def hash_password(password: str, gate: HashGate) -> str:
    return str(await gate.run(lambda: hasher.hash(password)))


async def verify_password(stored: str | None, password: str, gate: HashGate) -> bool:
    def verify() -> bool:
        try:
            return hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False

    return bool(await gate.run(verify))


# -- cookies -----------------------------------------------------------------------------------


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_login_cookies(request: Request, response: Response, login: NewLoginSession) -> None:
    max_age = int((login.session.expires_at - datetime.now(UTC)).total_seconds())
    secure = is_https(request)
    response.set_cookie(
        SESSION_COOKIE,
        login.token,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure,
    )
    response.set_cookie(
        CSRF_COOKIE,
        login.session.csrf_token,
        max_age=max_age,
        path="/",
        httponly=False,
        samesite="strict",
        secure=secure,
    )


def clear_login_cookies(request: Request, response: Response) -> None:
    secure = is_https(request)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=secure)
    response.delete_cookie(CSRF_COOKIE, path="/", samesite="strict", secure=secure)


def anonymous_csrf(request: Request, response: Response) -> str:
    """The double-submit CSRF token of a visitor who is not logged in (set when missing)."""
    token = request.cookies.get(CSRF_COOKIE)
    if not token or len(token) > 100:
        token = secrets.token_urlsafe(32)
        response.set_cookie(
            CSRF_COOKIE,
            token,
            path="/",
            httponly=False,
            samesite="strict",
            secure=is_https(request),
        )
    return token


def _same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a).encode(), str(b).encode())


def check_csrf(request: Request, expected: str | None) -> None:
    if request.method in SAFE_METHODS:
        return
    if not _same(request.headers.get(CSRF_HEADER), expected):
        raise PermissionDeniedError(
            "missing or wrong CSRF token: send the X-CSRF-Token header (reload the page)",
            code="csrf_failed",
        )


def check_anonymous_csrf(request: Request) -> None:
    """CSRF check for requests made before logging in (double submit against the cookie)."""
    check_csrf(request, request.cookies.get(CSRF_COOKIE))


# -- who is asking ------------------------------------------------------------------------------


def check_local_host(request: Request) -> None:
    host = request.headers.get("host", "")
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if not is_loopback(name):
        raise PermissionDeniedError(
            "single-user mode only answers requests for a loopback host (localhost, 127.0.0.1)",
            code="not_loopback",
        )


async def find_viewer(request: Request, state: WebState) -> Viewer | None:
    """The signed-in user, or None (no CSRF check)."""
    if state.settings.single_user:
        check_local_host(request)
        user = await run_in_threadpool(state.local_user)
        return Viewer(user, request.cookies.get(CSRF_COOKIE) or "")
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    found = await run_in_threadpool(state.storage.sessions.get, token)
    if found is None:
        return None
    user, session = found
    return Viewer(user, session.csrf_token, token)


async def viewer(request: Request, state: State) -> Viewer:
    """Dependency: the signed-in user (401 otherwise); CSRF-checked for state changes."""
    found = await find_viewer(request, state)
    if found is None:
        raise AuthenticationError("sign in first", code="not_signed_in")
    check_csrf(request, found.csrf_token)
    return found


async def admin(current: Annotated[Viewer, Depends(viewer)]) -> Viewer:
    """Dependency: an admin (403 otherwise)."""
    if not current.user.is_admin:
        raise PermissionDeniedError("only an admin can do this", code="admin_only")
    return current


CurrentViewer = Annotated[Viewer, Depends(viewer)]
AdminViewer = Annotated[Viewer, Depends(admin)]
