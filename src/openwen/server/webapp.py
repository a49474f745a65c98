"""The web chat app: ``install(app, settings, service)`` adds it to the HTTP application.

It adds the page at ``/`` (and ``/c/<id>``), its assets under ``/static``, and the JSON API it
talks to under ``/api`` (accounts, conversations, messages with streamed answers, search,
export/import, preferences, API keys, models). Every answer is generated through
:class:`~openwen.chat.conversations.ConversationChat` over the given chat service.

At startup the store is opened and migrated, and answers a killed process left ``streaming`` are
marked ``incomplete``; at shutdown answers in flight are stopped and saved as ``incomplete``.
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
from openwen.server.app import accounts, conversations, messages, preferences
from openwen.server.app.state import WebState
from openwen.server.app.static import page_router, static_app
from openwen.server.auth import is_loopback


def check_single_user(settings: Settings) -> None:
    """Single-user mode (no login) is refused unless the server listens on loopback only."""
    if settings.single_user and not is_loopback(settings.host):
        raise ConfigError(
            f"single-user mode (no login) only works on a loopback address, not on "
            f"{settings.host}; listen on 127.0.0.1, or turn single_user off and sign in"
        )


def install(
    app: FastAPI, settings: Settings, service: ChatService, *, save_interval: float = 0.5
) -> WebState:
    """Mount the web app on ``app``. Raises ConfigError for single-user mode off loopback."""
    check_single_user(settings)
    state = WebState(settings=settings, service=service, save_interval=save_interval)
    app.state.webapp = state
    if OpenwenError not in app.exception_handlers:
        from openwen.server.errors import install_error_handlers

        install_error_handlers(app)
    for module in (accounts, conversations, messages, preferences):
        app.include_router(module.router)
    app.include_router(page_router())
    app.mount("/static", static_app(), name="static")
    _wrap_lifespan(app, state)
    return state


def _wrap_lifespan(app: FastAPI, state: WebState) -> None:
    """Start the web app's state before the app's own startup; stop its answers before the
    app's own shutdown closes the engines."""
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        await run_in_threadpool(state.startup)
        try:
            async with inner(application) as value:
                try:
                    yield value
                finally:
                    await state.stop_answers()
        finally:
            state.close()

    app.router.lifespan_context = lifespan
