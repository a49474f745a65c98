"""The web app's training API under ``/api/tune``: start, follow, cancel and remove jobs.

Who may train is the server setting ``tune_users`` (``admins`` by default, ``everyone``, or
``nobody``). Training itself runs in the runner process (:mod:`openwen.tune.runner`); these routes
only validate, queue and read job files, each in a worker thread.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from openwen.errors import InvalidRequestError, PermissionDeniedError
from openwen.server.app.schemas import Body
from openwen.server.app.security import CurrentViewer, Viewer
from openwen.server.app.state import State, WebState

router = APIRouter(prefix="/api/tune", tags=["web app: training"])


async def trainer(current: CurrentViewer, state: State) -> Viewer:
    """Dependency: a user the ``tune_users`` setting lets train (403 otherwise)."""
    who = state.settings.tune_users
    if who == "nobody":
        raise PermissionDeniedError("training is switched off on this server (tune_users)",
                                    code="tune_disabled")
    if who == "admins" and not current.user.is_admin:
        raise PermissionDeniedError("only an admin may train models on this server "
                                    "(tune_users)", code="admin_only")
    return current


Trainer = Annotated[Viewer, Depends(trainer)]


class NewJob(Body):
    name: str = Field(min_length=1, max_length=64)
    base: str = Field(min_length=1, max_length=300)
    source: Literal["file", "conversations", "documents"] = Field(
        "file", description="file: the JSONL in 'data'; conversations: your answers rated "
        "good or edited ('rated'); documents: your collection 'collection'")
    data: str | None = Field(None, min_length=1, description="the JSONL dataset's text")
    data_name: str = Field("dataset.jsonl", min_length=1, max_length=255)
    rated: Literal["good", "edited", "both"] = "both"
    collection: str | None = Field(None, min_length=1, max_length=100)
    epochs: int = Field(3, ge=1, le=100)
    rank: int = Field(8, ge=1, le=256)
    lr: float = Field(1e-3, gt=0, lt=1)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    max_length: int = Field(1024, ge=16, le=32768)
    batch_size: int = Field(4, ge=1, le=64)


@router.get("", summary="Whether you may train, and the models you can train on")
async def capabilities(current: CurrentViewer, state: State) -> dict[str, Any]:
    try:
        await trainer(current, state)
        allowed, reason = True, None
    except PermissionDeniedError as exc:
        allowed, reason = False, exc.message

    def bases() -> list[str]:
        from openwen.models.store import ModelStore

        return [m.name for m in ModelStore(state.settings).list()
                if m.base is None and m.metadata is not None]

    return {"allowed": allowed, "reason": reason, "who": state.settings.tune_users,
            "bases": await run_in_threadpool(bases) if allowed else []}


@router.get("/jobs", summary="Every training job")
async def list_jobs(_: Trainer, state: State) -> dict[str, Any]:
    from openwen.tune.jobs import JobStore

    store = JobStore(state.settings)

    def read() -> list[Any]:
        store.resume()
        return store.list()

    jobs = await run_in_threadpool(read)
    return {"jobs": [j.to_dict() for j in jobs]}


@router.post("/jobs", status_code=201, summary="Start a training job (it queues behind others)")
async def create(body: NewJob, current: Trainer, state: State) -> dict[str, Any]:
    from openwen.tune.service import create_job
    from openwen.tune.train import TrainSettings

    train = TrainSettings(epochs=body.epochs, rank=body.rank, lr=body.lr, seed=body.seed,
                          max_length=body.max_length, batch_size=body.batch_size)
    user = current.user

    def run() -> Any:
        data, data_name, source = _dataset(state, body, user.id, user.username)
        return create_job(state.settings, name=body.name, base=body.base, data=data,
                          data_name=data_name, train=train, owner=user.username, source=source)

    created = await run_in_threadpool(run)
    return {"job": created.job.to_dict(), "warnings": created.warnings,
            "n_train": created.n_train, "n_heldout": created.n_heldout}


def _dataset(state: WebState, body: NewJob, user_id: int, username: str
             ) -> tuple[bytes, str, dict[str, Any]]:
    """The job's JSONL, name and source: the uploaded file, or built from the user's own
    conversations or documents."""
    from openwen.tune.sources import conversations_dataset, documents_dataset

    if body.source == "file":
        if body.data is None:
            raise InvalidRequestError("give the dataset's JSONL text in 'data'", param="data")
        return body.data.encode("utf-8"), body.data_name, {"kind": "file"}
    if body.source == "conversations":
        built = conversations_dataset(state.storage, user_id, username, body.rated)
        return built.data, built.name, {"kind": "conversations", "user": username,
                                        "rated": body.rated}
    if body.collection is None:
        raise InvalidRequestError("name the document collection in 'collection'",
                                  param="collection")
    built = documents_dataset(state.storage, user_id, username, body.collection)
    return built.data, built.name, {"kind": "documents", "user": username,
                                    "collection": body.collection}


@router.get("/jobs/{name}", summary="A job's progress, loss curve and evaluation")
async def get_job(name: str, _: Trainer, state: State) -> dict[str, Any]:
    from openwen.tune.jobs import JobStore

    job = await run_in_threadpool(JobStore(state.settings).get, name)
    return {"job": job.to_dict()}


@router.post("/jobs/{name}/cancel", summary="Cancel a queued or running job")
async def cancel(name: str, _: Trainer, state: State) -> dict[str, Any]:
    from openwen.tune.jobs import JobStore

    job = await run_in_threadpool(JobStore(state.settings).cancel, name)
    return {"job": job.to_dict()}


class MergeRequest(Body):
    name: str | None = Field(None, min_length=1, max_length=64,
                             description="the merged model's name (default <job>-merged)")


@router.post("/jobs/{name}/merge", status_code=201,
             summary="Write a finished derivative as a full GGUF model of its own")
async def merge(name: str, body: MergeRequest, _: Trainer, state: State) -> dict[str, Any]:
    from openwen.tune.jobs import JobStore
    from openwen.tune.service import merge_job

    def run() -> dict[str, Any]:  # dequantising and writing: a worker thread, never the loop
        made = merge_job(state.settings, name, body.name)
        return {"merged": made, "job": JobStore(state.settings).get(name).to_dict()}

    return await run_in_threadpool(run)


@router.delete("/jobs/{name}", summary="Remove a finished job and its derivative")
async def remove(name: str, _: Trainer, state: State) -> dict[str, Any]:
    from openwen.tune.jobs import JobStore

    job = await run_in_threadpool(JobStore(state.settings).remove, name)
    return {"name": job.name, "deleted": True}
