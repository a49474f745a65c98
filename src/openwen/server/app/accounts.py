"""Accounts: session state, sign-up, login, logout, password change, and user administration.

Sign-up is open to the first visitor, who becomes the admin, and afterwards only while the admin
has opened registration (``PUT /api/admin/registration``); otherwise the admin adds users.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from openwen.errors import InvalidRequestError, PermissionDeniedError
from openwen.server.app.schemas import (
    Credentials,
    NewUser,
    PasswordChange,
    Registration,
    UserChange,
    user_json,
)
from openwen.server.app.security import (
    AdminViewer,
    CurrentViewer,
    Viewer,
    anonymous_csrf,
    check_anonymous_csrf,
    check_password_rules,
    clear_login_cookies,
    find_viewer,
    hash_password,
    set_login_cookies,
    verify_password,
)
from openwen.server.app.state import State, WebState
from openwen.storage.instance import InstanceSettingsRepo
from openwen.storage.users import normalise_username

router = APIRouter(prefix="/api", tags=["web app: accounts"])


def _signup_open(state: WebState) -> bool:
    if state.storage.users.count() == 0:
        return True
    return bool(InstanceSettingsRepo(state.storage.db).get("open_registration"))


@router.get("/session", summary="Who is signed in, the CSRF token, and whether sign-up is open")
async def session(request: Request, response: Response, state: State) -> dict[str, Any]:
    current = await find_viewer(request, state)
    if current is not None and state.settings.single_user:
        current = Viewer(current.user, anonymous_csrf(request, response))
    return {
        "user": user_json(current.user) if current else None,
        "csrf_token": current.csrf_token if current else anonymous_csrf(request, response),
        "single_user": state.settings.single_user,
        "signup_open": (
            not state.settings.single_user and await run_in_threadpool(_signup_open, state)
        ),
        "first_user": await run_in_threadpool(state.storage.users.count) == 0,
    }


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _no_accounts_in_single_user(state: WebState) -> None:
    if state.settings.single_user:
        raise InvalidRequestError("single-user mode has no login", code="single_user")


@router.post("/auth/signup", summary="Create an account (the first one becomes the admin)")
async def signup(body: Credentials, request: Request, state: State) -> Response:
    check_anonymous_csrf(request)
    _no_accounts_in_single_user(state)
    normalise_username(body.username)
    check_password_rules(body.password)
    if not await run_in_threadpool(_signup_open, state):  # before any costly hashing
        raise _signup_closed()
    wait = await run_in_threadpool(state.login_limiter().signup, _address(request))
    if wait:
        return _too_many(wait, "too many sign-ups from this address")
    password_hash = await hash_password(body.password, state.hashing)
    async with state.signup_lock:  # two first visitors must not both become admin
        first = await run_in_threadpool(state.storage.users.count) == 0
        if not first and not await run_in_threadpool(_signup_open, state):
            raise _signup_closed()
        user = await run_in_threadpool(
            lambda: state.storage.users.create(body.username, password_hash, is_admin=first)
        )
    return await _logged_in(request, state, user.id, status_code=201)


def _signup_closed() -> PermissionDeniedError:
    return PermissionDeniedError("sign-up is closed: ask the admin for an account",
                                 code="signup_closed")


@router.post("/auth/login", summary="Sign in with a username and password")
async def login(body: Credentials, request: Request, state: State) -> Response:
    check_anonymous_csrf(request)
    _no_accounts_in_single_user(state)
    address = _address(request)
    limiter = state.login_limiter()
    # counted before checking, atomically in the store shared by every instance
    wait, attempt = await run_in_threadpool(limiter.attempt, body.username, address)
    if wait:
        return _too_many(wait, "too many login attempts")
    user = await run_in_threadpool(state.storage.users.get_by_name, body.username)
    stored = None
    if user is not None:
        stored = await run_in_threadpool(state.storage.users.password_hash, user.id)
    ok = await verify_password(stored, body.password, state.hashing)
    if not ok or user is None or user.disabled:
        return JSONResponse(
            _error("wrong username or password", "authentication_error", "invalid_credentials"),
            status_code=401,
        )
    await run_in_threadpool(limiter.succeeded, body.username, address, attempt)
    return await _logged_in(request, state, user.id)


def _error(message: str, type_: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def _too_many(wait: int, what: str) -> JSONResponse:
    body = _error(
        f"{what}; try again in {wait} seconds",
        "rate_limit_error",
        "too_many_attempts",
    )
    return JSONResponse(body, status_code=429, headers={"Retry-After": str(wait)})


async def _logged_in(
    request: Request, state: WebState, user_id: int, status_code: int = 200
) -> Response:
    new = await run_in_threadpool(state.storage.sessions.create, user_id)
    user = await run_in_threadpool(state.storage.users.get, user_id)
    response = JSONResponse(
        {"user": user_json(user), "csrf_token": new.session.csrf_token}, status_code=status_code
    )
    set_login_cookies(request, response, new)
    return response


@router.post("/auth/logout", summary="Sign out (this browser)")
async def logout(request: Request, current: CurrentViewer, state: State) -> Response:
    if current.session_token:
        await run_in_threadpool(state.storage.sessions.delete, current.session_token)
    response = JSONResponse({"ok": True})
    clear_login_cookies(request, response)
    return response


@router.post("/auth/password", summary="Change your password (signs out other browsers)")
async def change_password(
    body: PasswordChange,
    request: Request,
    current: CurrentViewer,
    state: State,
) -> Response:
    users = state.storage.users
    stored = await run_in_threadpool(users.password_hash, current.user.id)
    if stored is not None and not await verify_password(stored, body.current_password,
                                                         state.hashing):
        raise PermissionDeniedError("the current password is wrong", code="wrong_password")
    check_password_rules(body.new_password)
    new_hash = await hash_password(body.new_password, state.hashing)
    await run_in_threadpool(users.set_password_hash, current.user.id, new_hash)
    await run_in_threadpool(state.storage.sessions.delete_for_user, current.user.id)
    if state.settings.single_user:
        return JSONResponse({"ok": True})
    return await _logged_in(request, state, current.user.id)


# -- administration ------------------------------------------------------------------------------


@router.get("/admin/users", summary="List accounts (admin)")
async def list_users(_: AdminViewer, state: State) -> dict[str, Any]:
    users = await run_in_threadpool(state.storage.users.list_all)
    return {"users": [user_json(u) for u in users]}


@router.post("/admin/users", status_code=201, summary="Add an account (admin)")
async def add_user(body: NewUser, _: AdminViewer, state: State) -> dict[str, Any]:
    normalise_username(body.username)
    check_password_rules(body.password)
    password_hash = await hash_password(body.password, state.hashing)
    user = await run_in_threadpool(
        lambda: state.storage.users.create(body.username, password_hash, is_admin=body.is_admin)
    )
    return {"user": user_json(user)}


def _other_admins(state: WebState, user_id: int) -> int:
    return sum(
        1
        for u in state.storage.users.list_all()
        if u.is_admin and not u.disabled and u.id != user_id
    )


@router.patch("/admin/users/{user_id}", summary="Disable, enable or (un)make admin (admin)")
async def change_user(
    user_id: int,
    body: UserChange,
    current: AdminViewer,
    state: State,
) -> dict[str, Any]:
    users = state.storage.users

    def change() -> Any:
        target = users.get(user_id)
        demoting = body.is_admin is False or body.disabled is True
        if target.id == current.user.id and demoting:
            raise InvalidRequestError("you cannot disable or demote yourself", code="self")
        if target.is_admin and demoting and _other_admins(state, target.id) == 0:
            raise InvalidRequestError("the last admin must stay", code="last_admin")
        if body.disabled is not None:
            target = users.set_disabled(user_id, body.disabled)
            if body.disabled:
                state.storage.sessions.delete_for_user(user_id)
        if body.is_admin is not None:
            target = users.set_admin(user_id, body.is_admin)
        return target

    return {"user": user_json(await run_in_threadpool(change))}


@router.delete("/admin/users/{user_id}", summary="Remove an account and its data (admin)")
async def remove_user(user_id: int, current: AdminViewer, state: State) -> dict[str, Any]:
    def remove() -> None:
        if user_id == current.user.id:
            raise InvalidRequestError("you cannot remove yourself", code="self")
        state.storage.users.get(user_id)
        state.delete_user(user_id)

    await run_in_threadpool(remove)
    return {"ok": True}


@router.get("/admin/registration", summary="Whether anyone may sign up (admin)")
async def get_registration(_: AdminViewer, state: State) -> dict[str, Any]:
    repo = InstanceSettingsRepo(state.storage.db)
    return {"open": bool(await run_in_threadpool(repo.get, "open_registration"))}


@router.put("/admin/registration", summary="Open or close sign-up (admin)")
async def set_registration(body: Registration, _: AdminViewer, state: State) -> dict[str, Any]:
    repo = InstanceSettingsRepo(state.storage.db)
    await run_in_threadpool(repo.set, "open_registration", body.open)
    return {"open": body.open}
