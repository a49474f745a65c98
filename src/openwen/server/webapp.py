"""The web chat app: ``install(app, settings, service)`` adds it to the HTTP application.

It adds the page at ``/`` (and ``/c/<id>``), its assets under ``/static``, and the JSON API it
talks to under ``/api`` (accounts, conversations, messages with streamed answers, search,
export/import, preferences, API keys, models, tools and their confirmations) and, under
``/api/knowledge``, documents, collections and memories (:mod:`openwen.server.knowledge_api`).
Every answer is generated through :class:`~openwen.chat.conversations.ConversationChat` over the
given chat service, with the user's tools and the knowledge base.

At startup the store is opened and migrated, the instance registers its heartbeat, answers
that gone instances left ``streaming`` are marked ``incomplete`` (then periodically), MCP
servers are started (unless the app already shares its own, on ``app.state.tools``) and the
knowledge base is made over the app's embedding service (``app.state.embeddings``; or the
``embedder`` given). At shutdown answers in flight are stopped
and saved as ``incomplete``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from openwen.chat.service import ChatService
from openwen.config import Settings
from openwen.errors import ConfigError, OpenwenError
from openwen.knowledge import KnowledgeBase, TextEmbedder
from openwen.server.app import (
    accounts,
    conversations,
    feedback,
    messages,
    models_api,
    preferences,
    tools,
    tune_api,
)
from openwen.server.app.security import CurrentViewer
from openwen.server.app.state import State, WebState
from openwen.server.app.static import page_router, static_app
from openwen.server.auth import is_loopback
from openwen.server.knowledge_api import create_knowledge_router, upload_path
from openwen.tools.shared import SharedTools


def check_single_user(settings: Settings) -> None:
    """Single-user mode (no login) is refused unless the server listens on loopback only."""
    if settings.single_user and not is_loopback(settings.host):
        raise ConfigError(
            f"single-user mode (no login) only works on a loopback address, not on "
            f"{settings.host}; listen on 127.0.0.1, or turn single_user off and sign in"
        )


async def viewer_id(current: CurrentViewer) -> int:
    """The knowledge router's user: the signed-in user (CSRF-checked for changes)."""
    return current.user.id


def knowledge_base(state: State) -> KnowledgeBase:
    return state.knowledge_base()


def install(
    app: FastAPI,
    settings: Settings,
    service: ChatService,
    *,
    save_interval: float = 0.5,
    embedder: TextEmbedder | None = None,
    with_tools: bool = True,
) -> WebState:
    """Mount the web app on ``app``. Raises ConfigError for single-user mode off loopback.
    ``with_tools`` off: answers never call tools."""
    check_single_user(settings)
    state = WebState(settings=settings, service=service, save_interval=save_interval,
                     embedder=embedder)
    if with_tools:
        shared = getattr(app.state, "tools", None)
        state.tools = shared if isinstance(shared, SharedTools) else SharedTools(settings)
        state.own_tools = state.tools is not shared
    app.state.webapp = state
    if OpenwenError not in app.exception_handlers:
        from openwen.server.errors import install_error_handlers

        install_error_handlers(app)
    for module in (accounts, conversations, feedback, messages, models_api, preferences, tools,
                   tune_api):
        app.include_router(module.router)
    app.include_router(create_knowledge_router(user_id=viewer_id, knowledge=knowledge_base))
    exempt = getattr(app.state, "body_limit_exempt", None)
    if exempt is not None:  # uploads stream and limit their own bodies
        exempt.add(upload_path)
    app.include_router(page_router())
    app.mount("/static", static_app(), name="static")
    app.add_middleware(InstanceHeaderMiddleware, instance_id=state.instance_id)
    _wrap_lifespan(app, state)
    return state


class InstanceHeaderMiddleware:
    """Names the instance that answered in an ``X-Openwen-Instance`` response header (which
    one of the instances behind a load balancer served a request)."""

    def __init__(self, app: Any, instance_id: str):
        self.app = app
        self.header = (b"x-openwen-instance", instance_id.encode())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def tagged(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), self.header]
            await send(message)

        await self.app(scope, receive, tagged)


def _wrap_lifespan(app: FastAPI, state: WebState) -> None:
    """Start the web app's state before the app's own startup; stop its answers before the
    app's own shutdown closes the engines."""
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        await run_in_threadpool(state.startup)
        try:
            async with inner(application) as value:
                await state.start_services(app.state)
                try:
                    yield value
                finally:
                    await state.stop_answers()
                    await state.stop_liveness()
                    await state.stop_services()
        finally:
            state.close()

    app.router.lifespan_context = lifespan
