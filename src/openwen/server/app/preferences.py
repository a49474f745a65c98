"""The signed-in user's preferences and API keys (models: :mod:`openwen.server.app.models_api`)."""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from openwen.errors import InvalidRequestError
from openwen.server.app.schemas import NewKey, UserSettings, key_json
from openwen.server.app.security import CurrentViewer
from openwen.server.app.state import State

router = APIRouter(prefix="/api", tags=["web app: preferences"])

UI_KEY = re.compile(r"ui\.[a-z][a-z0-9_]{0,40}")
MAX_VALUE_BYTES = 20_000
MAX_KEYS = 50


def _ui_settings(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if UI_KEY.fullmatch(k)}


@router.get("/settings", summary="Your preferences (theme, defaults for new chats)")
async def get_settings(current: CurrentViewer, state: State) -> dict[str, Any]:
    values = await run_in_threadpool(state.storage.settings.get_all, current.user.id)
    return {"values": _ui_settings(values)}


@router.put("/settings", summary="Change preferences (keys ui.*; a null value removes one)")
async def put_settings(body: UserSettings, current: CurrentViewer, state: State) -> dict[str, Any]:
    if len(body.values) > MAX_KEYS:
        raise InvalidRequestError(f"at most {MAX_KEYS} settings at once", param="values")
    for key, value in body.values.items():
        if not UI_KEY.fullmatch(key):
            raise InvalidRequestError(
                f"unknown setting {key!r}: keys look like ui.theme", param="values"
            )
        if len(json.dumps(value)) > MAX_VALUE_BYTES:
            raise InvalidRequestError(f"setting {key!r} is too large", param="values")
    repo = state.storage.settings
    user_id = current.user.id

    def save() -> dict[str, Any]:
        for key, value in body.values.items():
            if value is None:
                repo.delete(user_id, key)
            else:
                repo.set(user_id, key, value)
        return _ui_settings(repo.get_all(user_id))

    return {"values": await run_in_threadpool(save)}


@router.get("/keys", summary="Your API keys (for the OpenAI-compatible API)")
async def list_keys(current: CurrentViewer, state: State) -> dict[str, Any]:
    keys = await run_in_threadpool(state.storage.api_keys.list_for, current.user.id)
    return {"keys": [key_json(k) for k in keys]}


@router.post("/keys", status_code=201, summary="Create an API key (the secret is shown once)")
async def create_key(body: NewKey, current: CurrentViewer, state: State) -> dict[str, Any]:
    new = await run_in_threadpool(state.storage.api_keys.create, current.user.id, body.name,
                                  body.scopes)
    return {"key": key_json(new.key), "secret": new.secret}


@router.delete("/keys/{key_id}", summary="Revoke one of your API keys")
async def revoke_key(key_id: int, current: CurrentViewer, state: State) -> dict[str, Any]:
    key = await run_in_threadpool(state.storage.api_keys.revoke, current.user.id, key_id)
    return {"key": key_json(key)}
