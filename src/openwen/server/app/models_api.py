"""The web app's model library API: installed models with their profiles and capabilities, the
catalog measured against this machine, background downloads, remove, set-as-default, profile
edits (the admin's server-wide ones and each user's own) and named derivatives.

Who may change the library: admins, and every user when ``users_may_pull`` is on (the config
default, switched by an admin here). Profiles: an admin edits the server-wide layer, every user
their own; set-as-default is each user's default for new chats.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from openwen.errors import InvalidRequestError, ModelNotFoundError, PermissionDeniedError
from openwen.models import catalog
from openwen.models.fit import memory_free, memory_needed, memory_total, recommend
from openwen.models.profiles import (
    Profile,
    SamplingDefaults,
    capabilities_of,
    check_name,
    save_derivative,
)
from openwen.models.store import LocalModel, ModelStore
from openwen.server.app.schemas import Body
from openwen.server.app.security import AdminViewer, CurrentViewer, Viewer
from openwen.server.app.state import SERVER_PROFILES, USER_PROFILES, State, WebState
from openwen.storage.instance import InstanceSettingsRepo

router = APIRouter(prefix="/api", tags=["web app: models"])

POLICY_KEY = "users_may_pull"


class ModelRef(Body):
    model: str = Field(min_length=1, max_length=500)


class PullRequest(Body):
    spec: str = Field(min_length=1, max_length=500)


class Example(Body):
    user: str = Field(min_length=1, max_length=8000)
    assistant: str = Field(min_length=1, max_length=8000)


class ProfileEdit(Body):
    model: str = Field(min_length=1, max_length=500)
    scope: Literal["user", "server"] = "user"
    # the layer's new values: null clears this layer's value (the layers below decide), a key
    # left out keeps what this layer had
    system: str | None = Field(default=None, max_length=8000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    thinking: bool | None = None
    tools: bool | None = None
    description: str | None = Field(default=None, max_length=500)
    # example exchanges shown before the conversation ([] switches the lower layers' off)
    examples: list[Example] | None = Field(default=None, max_length=12)
    arithmetic: bool | None = None  # the calculator finishes equations the model writes


class Derivative(Body):
    name: str = Field(min_length=1, max_length=64)
    base: str = Field(min_length=1, max_length=500)
    system: str | None = Field(default=None, max_length=8000)
    temperature: float | None = Field(default=None, ge=0, le=2)


class Policy(Body):
    users_may_pull: bool


# -- who may do what -------------------------------------------------------------------------------


def may_pull(state: WebState) -> bool:
    """Users (not only admins) may change the library (blocking)."""
    value = InstanceSettingsRepo(state.storage.db).get(POLICY_KEY)
    return value if isinstance(value, bool) else state.settings.users_may_pull


async def check_may_change(current: Viewer, state: WebState) -> None:
    if current.user.is_admin or await run_in_threadpool(may_pull, state):
        return
    raise PermissionDeniedError("only an admin can download or remove models here",
                                code="admin_only")


# -- listing ---------------------------------------------------------------------------------------


def _chats_by_model(state: WebState, user_id: int, default: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for conversation in state.storage.conversations.list_for(user_id, limit=10_000):
        model = conversation.settings.get("model") or default
        if isinstance(model, str):
            counts[model] = counts.get(model, 0) + 1
    return counts


def _model_json(state: WebState, model: LocalModel, user_id: int,
                chats: dict[str, int]) -> dict[str, Any]:
    meta = model.metadata
    profile, capabilities = state.profile_for(user_id, model.name)
    return {
        "id": model.name,
        "size": model.size,
        "bundled": model.bundled,
        "quantization": meta.quantization if meta else None,
        "architecture": meta.architecture if meta else None,
        "context_length": meta.context_length if meta else None,
        "parameters": meta.size_label if meta else None,
        "lineage": meta.lineage if meta else "",
        "base": model.base,
        "repo": model.repo,
        "problem": model.problem,
        "capabilities": capabilities.to_dict() if meta else None,
        "profile": profile.to_dict(),
        "chats": chats.get(model.name, 0),
        "engine": "embedded",
        "available": True,
    }


def _library(state: WebState, current: Viewer, default: str, infos: list[Any]) -> dict[str, Any]:
    user_id = current.user.id
    local = {m.name: m for m in ModelStore(state.settings).list()}
    chats = _chats_by_model(state, user_id, default)
    items = []
    for info in infos:  # the registry's order: what the picker offers
        model = local.get(info.id)
        if model is not None and info.details.get("engine") == "embedded":
            items.append(_model_json(state, model, user_id, chats))
            continue
        profile, _ = state.profile_for(user_id, info.id)
        items.append({"id": info.id, "context_length": info.context_length,
                      "engine": info.details.get("engine", "remote"),
                      "available": info.details.get("available", True) is not False,
                      "chats": chats.get(info.id, 0), "capabilities": None,
                      "profile": profile.to_dict()})
    embedded = [m for m in local.values() if m.base is None]
    only_demo = bool(embedded) and all(m.bundled for m in embedded) and \
        state.settings.engine == "embedded"
    return {
        "default": default,
        "models": items,
        "can_change": current.user.is_admin or may_pull(state),
        "users_may_pull": may_pull(state),
        "is_admin": current.user.is_admin,
        "first_run": {
            "only_demo": only_demo,
            "recommended": recommend(state.settings.n_ctx) if only_demo else None,
        },
        "hub": state.settings.hub,
    }


@router.get("/models", summary="Installed models (size, capabilities, profile), and the default")
async def models(current: CurrentViewer, state: State) -> dict[str, Any]:
    registry = state.service.registry
    infos = await registry.list_models()
    return await run_in_threadpool(_library, state, current, registry.default_model, infos)


def _catalog(state: WebState) -> dict[str, Any]:
    installed = {m.name for m in ModelStore(state.settings).list()}
    free, total = memory_free(), memory_total()
    entries = []
    for entry in catalog.catalog().values():
        needed = memory_needed(entry.size, state.settings.n_ctx) if entry.size else None
        entries.append({
            **entry.to_dict(),
            "installed": entry.name in installed,
            "memory_needed": needed,
            "fits": None if needed is None or free is None else needed <= free,
        })
    qwen_first = sorted(entries, key=lambda e: 0 if e["name"].startswith("qwen") else 1)
    return {"models": qwen_first, "memory_free": free, "memory_total": total,
            "recommended": recommend(state.settings.n_ctx, free)}


@router.get("/models/catalog", summary="Models to download, with the memory each needs")
async def catalog_list(_: CurrentViewer, state: State) -> dict[str, Any]:
    return await run_in_threadpool(_catalog, state)


# -- downloads -------------------------------------------------------------------------------------


@router.get("/models/downloads", summary="Background downloads and their progress")
async def downloads(_: CurrentViewer, state: State) -> dict[str, Any]:
    return {"downloads": [j.to_dict() for j in state.downloads.list()]}


@router.post("/models/downloads", status_code=202, summary="Download a model in the background")
async def start_download(body: PullRequest, current: CurrentViewer, state: State) -> dict[str, Any]:
    await check_may_change(current, state)
    job = await run_in_threadpool(state.downloads.start, body.spec)
    return {"download": job.to_dict()}


@router.post("/models/downloads/{job_id}/cancel", summary="Stop a download (it resumes later)")
async def cancel_download(job_id: int, current: CurrentViewer, state: State) -> dict[str, Any]:
    state.downloads.get(job_id)  # 404 first
    await check_may_change(current, state)
    return {"download": state.downloads.cancel(job_id).to_dict()}


@router.delete("/models/downloads/{job_id}", summary="Forget a finished download")
async def dismiss_download(job_id: int, current: CurrentViewer, state: State) -> dict[str, Any]:
    state.downloads.get(job_id)  # 404 first
    await check_may_change(current, state)
    state.downloads.dismiss(job_id)
    return {"ok": True}


# -- remove, default, profiles, derivatives ------------------------------------------------------


@router.post("/models/remove", summary="Delete a downloaded model (or a derivative)")
async def remove(body: ModelRef, current: CurrentViewer, state: State) -> dict[str, Any]:
    await check_may_change(current, state)
    if body.model == state.service.registry.default_model:
        raise InvalidRequestError("this is the server's default model; it cannot be removed",
                                  param="model")
    removed = await run_in_threadpool(ModelStore(state.settings).remove, body.model)
    return {"removed": removed.name}


@router.post("/models/default", summary="Make a model your default for new chats")
async def set_default(body: ModelRef, current: CurrentViewer, state: State) -> dict[str, Any]:
    def save() -> str:
        name = ModelStore(state.settings).resolve(body.model).name
        state.storage.settings.set(current.user.id, "ui.default_model", name)
        return name

    return {"default": await run_in_threadpool(save)}


def _edit_layer(layer: dict[str, Any], body: ProfileEdit) -> dict[str, Any]:
    """``layer`` with ``body.model``'s entry edited: a field the request names (null included)
    is set or cleared in this layer; one it leaves out keeps what the layer had, so a form that
    edits the system prompt does not drop the examples a user set through the API."""
    sent = body.model_fields_set
    entry = dict(Profile.of(layer.get(body.model)).stored())
    sampling = dict(entry.get("sampling") or {})
    for key in ("temperature", "top_p"):
        if key in sent:
            sampling[key] = getattr(body, key)
    entry["sampling"] = {k: v for k, v in sampling.items() if v is not None}
    for key in ("system", "description"):  # an empty text clears it too
        if key in sent:
            entry[key] = getattr(body, key) or None
    for key in ("thinking", "tools", "arithmetic"):
        if key in sent:
            entry[key] = getattr(body, key)
    if "examples" in sent:
        entry["examples"] = (None if body.examples is None else
                             [{"user": e.user, "assistant": e.assistant} for e in body.examples])
    stored = Profile.of(entry).stored()
    updated = dict(layer)
    if stored:
        updated[body.model] = stored
    else:
        updated.pop(body.model, None)
    return updated


@router.put("/models/profile", summary="Change a model's profile: yours, or (admin) the server's")
async def edit_profile(body: ProfileEdit, current: CurrentViewer, state: State) -> dict[str, Any]:
    if body.scope == "server" and not current.user.is_admin:
        raise PermissionDeniedError("only an admin can change server-wide profiles",
                                    code="admin_only")

    def save() -> dict[str, Any]:
        store = ModelStore(state.settings)
        known = {m.name for m in store.list()}
        if body.model not in known:
            raise ModelNotFoundError(body.model, sorted(known))
        if body.scope == "server":
            repo = InstanceSettingsRepo(state.storage.db)
            layer = repo.get(SERVER_PROFILES)
            repo.set(SERVER_PROFILES, _edit_layer(layer if isinstance(layer, dict) else {}, body))
        else:
            settings = state.storage.settings
            layer = settings.get(current.user.id, USER_PROFILES, None)
            settings.set(current.user.id, USER_PROFILES,
                         _edit_layer(layer if isinstance(layer, dict) else {}, body))
        profile, _ = state.profile_for(current.user.id, body.model)
        return profile.to_dict()

    return {"profile": await run_in_threadpool(save)}


@router.post("/models/derive", status_code=201, summary="Make a named derivative of a model")
async def derive(body: Derivative, current: CurrentViewer, state: State) -> dict[str, Any]:
    await check_may_change(current, state)

    def save() -> dict[str, Any]:
        name = check_name(body.name)
        store = ModelStore(state.settings)
        if name in {m.name for m in store.list()}:
            raise InvalidRequestError(f"a model called '{name}' exists already", param="name")
        base = store.resolve(body.base)
        profile = Profile(system=body.system or None, base=base.name,
                          sampling=SamplingDefaults(temperature=body.temperature))
        save_derivative(store.root, name, profile)
        return {"id": name, "base": base.name,
                "capabilities": capabilities_of(base.metadata).to_dict()}

    return {"model": await run_in_threadpool(save)}


@router.put("/models/policy", summary="Let every user (not only admins) download models")
async def set_policy(body: Policy, _: AdminViewer, state: State) -> dict[str, Any]:
    def save() -> bool:
        InstanceSettingsRepo(state.storage.db).set(POLICY_KEY, body.users_may_pull)
        return may_pull(state)

    return {"users_may_pull": await run_in_threadpool(save)}
