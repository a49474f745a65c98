"""The HTTP application: ``create_app(settings)`` builds the app ``openwen serve`` runs.

Routes: the OpenAI-compatible API under ``/v1`` (chat completions, completions, models,
Routes: the OpenAI-compatible API under ``/v1`` (chat completions, completions, models,
embeddings, and the Responses API: :mod:`openwen.server.responses`), ``/health``, ``/metrics``,
``/openapi.json`` and the docs at ``/docs`` (:mod:`openwen.server.api_docs`, unless ``api_docs``
is off). Each API dialect is a folder under ``openwen.server`` whose router is included below
(see ``docs/answer-path.md``).

Security is shared by every route: :class:`~openwen.server.guard.RequestGuard` (Host allow-list,
Origin / Sec-Fetch-Site, JSON content type) sees each request first, whatever its path, and the
API routers are included with ``dependencies=API_DEPENDENCIES`` (API key and its ``inference``
scope, :mod:`openwen.server.auth`). A new API dialect includes its router the same way.
Chat completions run openwen's own tools only when a request opts in, the admin allows it and the
key has the ``tools`` scope (:mod:`openwen.server.openai.server_tools`).
Every route is a thin adapter over the answer path (:mod:`openwen.chat.answer`, through
:mod:`openwen.server.generating`) or the embedding service; none talks to an engine directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from pydantic import BaseModel

from openwen import __version__
from openwen.chat.service import ChatService
from openwen.config import Settings
from openwen.knowledge.embeddings import EmbeddingService
from openwen.server.anthropic import routes as anthropic
from openwen.server.auth import API_DEPENDENCIES, ApiKeyAuth
from openwen.server.errors import install_error_handlers
from openwen.server.guard import RequestGuard, split_list
from openwen.server.lifecycle import ShutdownGate
from openwen.server.limits import BodyLimitMiddleware
from openwen.server.metrics import Metrics, MetricsMiddleware
from openwen.server.ollama import routes as ollama
from openwen.server.openai import chat, completions, embeddings, models
from openwen.server.openai.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
)
from openwen.server.ops import queue_depths
from openwen.server.ops import router as ops_router
from openwen.server.responses import routes as responses
from openwen.server.responses.protocol import ResponseCreateRequest
from openwen.server.responses.state import ResponsesState
from openwen.tools.shared import SharedTools

log = logging.getLogger(__name__)

DESCRIPTION = """An OpenAI-compatible API over local open-weight models.

Point any OpenAI SDK at `http://HOST:PORT/v1`. Errors use OpenAI's error object. When the server
requires API keys, send `Authorization: Bearer <key>` (create keys with `openwen keys create`).
Streaming answers are server-sent events in OpenAI's chunk format; thinking models' reasoning
arrives in both `reasoning_content` and `reasoning` (same text)."""

BODY_MODELS: tuple[type[BaseModel], ...] = (ChatCompletionRequest, CompletionRequest,
                                            EmbeddingRequest, ResponseCreateRequest)


# FastAPI's own OpenTelemetry hooks stay off whatever the environment says
# (FASTAPI_OTEL_AUTO_CONFIGURE, a global provider): nothing about requests leaves the machine.
NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False,
                                 "operation_spans": False, "auto_configure": False}

def create_app(settings: Settings, *, service: ChatService | None = None,
               embedder: EmbeddingService | None = None, preload: bool = False,
               web: bool = True) -> FastAPI:
    """The app. A ``service`` passed in stays the caller's to close; one made here is closed
    at shutdown. ``preload`` loads the default chat model in the background at startup.
    ``web`` mounts the web chat app (accounts, conversations, UI at ``/``)."""
    own_service = service is None
    chat_service = service or ChatService(settings)
    embedding_service = embedder or EmbeddingService(settings)
    auth = ApiKeyAuth(settings)
    tools = SharedTools(settings)  # MCP servers, started once; for the web app and API opt-in
    shutdown = ShutdownGate()
    metrics = Metrics(lambda: queue_depths(chat_service))
    stored_responses = ResponsesState(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if auth.required:
            await asyncio.to_thread(auth.open)  # migrate now: a broken database fails at start
        warmup = asyncio.create_task(_preload(chat_service)) if preload else None
        await tools.start()
        try:
            yield
        finally:
            shutdown.begin(0)
            if warmup is not None:
                warmup.cancel()
            await stored_responses.aclose()
            await tools.aclose()
            if own_service:
                await chat_service.aclose()
            await embedding_service.aclose()
            auth.close()

    app = FastAPI(title="openwen", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan, docs_url=None, redoc_url=None, telemetry=NO_TELEMETRY)
    app.state.settings = settings
    app.state.service = chat_service
    app.state.embeddings = embedding_service
    app.state.encoded_models = models.EncodedList()
    app.state.auth = auth
    app.state.tools = tools
    app.state.shutdown = shutdown
    app.state.metrics = metrics
    app.state.responses = stored_responses
    # paths that stream and limit their own bodies (uploads) may be added after construction
    app.state.body_limit_exempt = set()
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes,
                       exempt=app.state.body_limit_exempt)
    if settings.ollama_port and settings.ollama_port != settings.port:
        from openwen.server.ollama.listener import OllamaPort

        app.add_middleware(OllamaPort, port=settings.ollama_port)  # inside the guard
    _add_guard(app, settings, auth.required)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    for module in (chat, completions, models, embeddings, responses):
        app.include_router(module.router, dependencies=API_DEPENDENCIES)
    anthropic.install(app, API_DEPENDENCIES)
    ollama.install(app, API_DEPENDENCIES)
    app.include_router(ops_router)
    if settings.api_docs:
        from openwen.server.api_docs import install_docs

        install_docs(app)
    if web:
        from openwen.server.webapp import install

        install(app, settings, chat_service)
        stored_responses.instance_id = app.state.webapp.instance_id  # registered, kept alive
    app.openapi = _openapi_with(app, BODY_MODELS)  # type: ignore[method-assign]
    return app


def _add_guard(app: FastAPI, settings: Settings, keys_required: bool) -> None:
    """The request guard (outside the body limit), and CORS for configured origins."""
    origins = split_list(settings.allowed_origins)
    if origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["*"],
                           allow_headers=["*"], allow_credentials=False, max_age=600)
    app.add_middleware(RequestGuard, check_host=not keys_required,
                       allowed_hosts=split_list(settings.allowed_hosts), allowed_origins=origins)


def app_from_environment() -> FastAPI:
    """The app of one ``openwen serve --workers N`` process (settings from the environment
    and the config file)."""
    from openwen.config import load_settings

    return create_app(load_settings().settings, preload=True)


async def _preload(service: ChatService) -> None:
    try:
        await service.engine_for(None)
    except Exception as exc:  # the first request will report it properly
        log.warning("could not preload the default model: %s", exc)


def _openapi_with(app: FastAPI, body_models: tuple[type[BaseModel], ...]
                  ) -> Callable[[], dict[str, Any]]:
    """Add the JSON schemas of bodies the routes parse themselves to the OpenAPI document."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = original()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in body_models:
            body = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(body.pop("$defs", {}))
            schemas[model.__name__] = body
        return schema

    return openapi
