"""The Ollama API's routes. Generation goes through :func:`openwen.server.generating.generate`
(NDJSON framing); model management through the local model store. Errors are Ollama's
``{"error": "message"}`` with the HTTP status (registered for these paths in
:func:`install`)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from openwen import __version__
from openwen.errors import InvalidRequestError, ModelNotFoundError, PermissionDeniedError
from openwen.server.errors import register_error_shape
from openwen.server.generating import generate, until_disconnect
from openwen.server.ollama import render, translate
from openwen.server.ollama.protocol import (
    ChatRequestBody,
    EmbedRequestBody,
    GenerateRequestBody,
    LegacyEmbeddingsBody,
    ModelBody,
)
from openwen.server.openai.base import parse_request
from openwen.server.sse import NDJSON

router = APIRouter(tags=["Ollama"])

OLLAMA_VERSION = "0.13.0"  # the Ollama API level these routes follow
PATHS = ("/api/version", "/api/tags", "/api/show", "/api/ps", "/api/chat", "/api/generate",
         "/api/embed", "/api/embeddings", "/api/pull", "/api/delete")


def ollama_error(status: int, message: str, type_: str, param: str | None,
                 code: str | None) -> dict[str, Any]:
    return {"error": message}


def install(app: FastAPI, dependencies: list[Any]) -> None:
    """Mount the routes (behind the API-key check) and Ollama's error shape on their paths."""
    app.include_router(router, dependencies=dependencies)
    for path in PATHS:
        register_error_shape(path, ollama_error)


async def _body(request: Request, model: type[Any]) -> Any:
    return parse_request(model, await request.body())


# -- generation ---------------------------------------------------------------------------------


@router.post("/api/chat", summary="Chat (Ollama): NDJSON stream, or one object with stream false")
async def chat(request: Request) -> Response:
    started = time.perf_counter()
    body: ChatRequestBody = await _body(request, ChatRequestBody)
    request_ = translate.chat_request(body)
    return await generate(
        request, request_, received=started, stream=body.stream,
        renderer=lambda model: render.ChatLines(body.model, started),
        respond=lambda model, events: render.chat_response(body.model, events, started))


@router.post("/api/generate", summary="Generate from a prompt (Ollama)")
async def generate_route(request: Request) -> Response:
    started = time.perf_counter()
    body: GenerateRequestBody = await _body(request, GenerateRequestBody)
    if not body.prompt and not body.raw:
        # an empty prompt loads the model (Ollama's "load" call)
        await request.app.state.service.engine_for(translate.model_name(body.model))
        return JSONResponse({"model": body.model, "created_at": render.now_iso(),
                             "response": "", "done": True, "done_reason": "load"})
    request_ = translate.generate_request(body)
    return await generate(
        request, request_, received=started, stream=body.stream,
        renderer=lambda model: render.GenerateLines(body.model, started),
        respond=lambda model, events: render.generate_response(body.model, events, started))


# -- embeddings ---------------------------------------------------------------------------------


async def _embed(request: Request, model: str, texts: list[str]) -> tuple[str, Any]:
    service = request.app.state.embeddings
    name, result = await until_disconnect(request, service.embed(translate.model_name(model),
                                                                 texts))
    request.app.state.metrics.prompt_tokens.labels(name).inc(result.prompt_tokens)
    return name, result


@router.post("/api/embed", summary="Embeddings for one text or a list (Ollama)")
async def embed(request: Request) -> JSONResponse:
    started = time.perf_counter()
    body: EmbedRequestBody = await _body(request, EmbedRequestBody)
    texts = [body.input] if isinstance(body.input, str) else list(body.input)
    if not texts:
        raise InvalidRequestError("input must be a text or a non-empty list of texts",
                                  param="input")
    _, result = await _embed(request, body.model, texts)
    if body.dimensions is not None and body.dimensions != result.dimensions:
        raise InvalidRequestError(
            f"model '{body.model}' makes {result.dimensions}-dimensional vectors",
            param="dimensions")
    return JSONResponse({
        "model": body.model, "embeddings": [v.tolist() for v in result.vectors],
        "total_duration": int((time.perf_counter() - started) * 1e9), "load_duration": 0,
        "prompt_eval_count": result.prompt_tokens})


@router.post("/api/embeddings", summary="One embedding (Ollama's older endpoint)")
async def embeddings(request: Request) -> JSONResponse:
    body: LegacyEmbeddingsBody = await _body(request, LegacyEmbeddingsBody)
    if not body.prompt:
        return JSONResponse({"embedding": []})
    _, result = await _embed(request, body.model, [body.prompt])
    return JSONResponse({"embedding": result.vectors[0].tolist()})


# -- models -------------------------------------------------------------------------------------


@router.get("/api/version", summary="The Ollama API version served")
async def version() -> JSONResponse:
    return JSONResponse({"version": OLLAMA_VERSION, "openwen": __version__})


def _details(meta: Any) -> dict[str, Any]:
    arch = getattr(meta, "architecture", None) or ""
    return {"parent_model": "", "format": "gguf", "family": arch,
            "families": [arch] if arch else None,
            "parameter_size": getattr(meta, "size_label", None) or "",
            "quantization_level": getattr(meta, "quantization", None) or ""}


def _digest(name: str, size: int) -> str:
    return hashlib.sha256(f"{name}:{size}".encode()).hexdigest()


def _entry(name: str, size: int, meta: Any) -> dict[str, Any]:
    return {"name": name, "model": name, "size": size, "digest": _digest(name, size),
            "details": _details(meta)}


def _store(request: Request) -> Any | None:
    """The local model store, or None (a gateway with no local models)."""
    if not request.app.state.settings.local_models:
        return None
    return getattr(request.app.state.service.registry, "store", None)


async def _local_models(request: Request) -> list[Any]:
    store = _store(request)
    return [] if store is None else list(await asyncio.to_thread(store.list))


@router.get("/api/tags", summary="Installed models (Ollama)")
async def tags(request: Request) -> JSONResponse:
    models: list[dict[str, Any]] = []
    for m in await _local_models(request):
        mtime = (await asyncio.to_thread(m.path.stat)).st_mtime
        models.append({**_entry(m.name, m.size, m.metadata),
                       "modified_at": render.datetime.fromtimestamp(
                           mtime, render.UTC).isoformat()})
    local = {m["name"] for m in models}
    for info in await request.app.state.service.registry.list_models():
        if info.id not in local:  # upstream models
            models.append({**_entry(info.id, 0, None), "modified_at": render.now_iso()})
    return JSONResponse({"models": models})


@router.get("/api/ps", summary="Models loaded in memory (Ollama)")
async def ps(request: Request) -> JSONResponse:
    loaded = []
    for engine in request.app.state.service.registry.loaded():
        for info in engine.models():
            loaded.append({"name": info.id, "model": info.id, "size": 0,
                           "digest": _digest(info.id, 0), "details": _details(None),
                           "expires_at": "0001-01-01T00:00:00Z", "size_vram": 0,
                           "context_length": info.context_length})
    return JSONResponse({"models": loaded})


@router.post("/api/show", summary="A model's details, template and capabilities (Ollama)")
async def show(request: Request) -> JSONResponse:
    body: ModelBody = await _body(request, ModelBody)
    name = translate.model_name(body.model_name())
    registry = request.app.state.service.registry
    store = _store(request)
    try:
        if store is None:
            raise ModelNotFoundError(name, [])
        model = await asyncio.to_thread(store.resolve, name)
    except ModelNotFoundError:
        for info in await registry.list_models():
            if info.id == name:
                return JSONResponse({"details": _details(None), "model_info": {},
                                     "capabilities": ["completion"]})
        raise
    meta = model.metadata
    template = (meta.chat_template if meta else None) or ""
    capabilities = ["completion"]
    if "tools" in template:
        capabilities.append("tools")
    if "<think>" in template or "enable_thinking" in template:
        capabilities.append("thinking")
    model_info: dict[str, Any] = {"general.architecture": meta.architecture if meta else None}
    if meta and meta.context_length and meta.architecture:
        model_info[f"{meta.architecture}.context_length"] = meta.context_length
    if meta and meta.parameter_count:
        model_info["general.parameter_count"] = meta.parameter_count
    return JSONResponse({"modelfile": f"FROM {model.path}\n", "parameters": "",
                         "template": template, "details": _details(meta),
                         "model_info": model_info, "capabilities": capabilities,
                         "modified_at": render.now_iso()})


def _check_may_manage(request: Request) -> None:
    """Pulling and deleting change the machine: the owner on loopback (no key needed there)
    or an admin's API key."""
    user = getattr(request.state, "user", None)
    if user is not None and not getattr(user, "is_admin", False):
        raise PermissionDeniedError("only an admin may pull or delete models", param="model")


@router.delete("/api/delete", summary="Delete a pulled model (Ollama)")
async def delete(request: Request) -> Response:
    _check_may_manage(request)
    body: ModelBody = await _body(request, ModelBody)
    store = _store(request)
    name = translate.model_name(body.model_name())
    if store is None:
        raise ModelNotFoundError(name, [])
    await asyncio.to_thread(store.remove, name)
    return Response(status_code=200)


@router.post("/api/pull", summary="Download a model, with Ollama's progress lines")
async def pull(request: Request) -> Response:
    _check_may_manage(request)
    body: ModelBody = await _body(request, ModelBody)
    name = translate.model_name(body.model_name())
    settings = request.app.state.settings
    lines: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def progress(p: Any) -> None:
        line: dict[str, Any] = {"status": f"pulling {p.file}", "digest": p.file,
                                "completed": p.completed}
        if p.total is not None:
            line["total"] = p.total
        if p.status == "verify":
            line = {"status": "verifying sha256 digest"}
        loop.call_soon_threadsafe(lines.put_nowait, line)

    def work() -> None:
        from openwen.models.pull import pull as pull_model

        pull_model(name, settings, progress=progress)

    task = asyncio.ensure_future(asyncio.to_thread(work))
    task.add_done_callback(lambda _: loop.call_soon_threadsafe(lines.put_nowait, None))

    async def stream() -> AsyncIterator[bytes]:
        yield NDJSON.encode({"status": "pulling manifest"})
        while (line := await lines.get()) is not None:
            yield NDJSON.encode(line)
        error = task.exception()
        if error is not None:
            message = getattr(error, "message", None) or str(error)
            yield NDJSON.encode({"error": message})
            return
        yield NDJSON.encode({"status": "success"})

    if body.stream:
        return StreamingResponse(stream(), media_type=NDJSON.media_type)
    with contextlib.suppress(Exception):
        await task
    if (error := task.exception()) is not None:
        raise error
    return JSONResponse({"status": "success"})
