"""The chat service: the one place every interface (CLI, HTTP API, web app) asks for an answer."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from openwen.config import Settings
from openwen.engines.base import Engine
from openwen.engines.registry import EngineRegistry
from openwen.errors import InvalidRequestError
from openwen.messages import StreamEvent
from openwen.requests import ChatRequest


class ChatService:
    def __init__(self, settings: Settings, registry: EngineRegistry | None = None, *,
                 allow_model_paths: bool = False):
        self.settings = settings
        self.registry = registry or EngineRegistry(settings, allow_paths=allow_model_paths)

    async def engine_for(self, model: str | None) -> Engine:
        return await self.registry.get(model)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Validate, pick the engine, and stream its events. Errors surface on the first event."""
        validate(request)
        engine = await self.registry.get(request.model)
        # aclosing: closing this stream closes the engine's at once (cancelling generation),
        # rather than whenever the garbage collector finalises it
        async with contextlib.aclosing(engine.stream(request)) as events:  # type: ignore[type-var]
            async for event in events:
                yield event

    async def aclose(self) -> None:
        await self.registry.aclose()


def validate(request: ChatRequest) -> None:
    if request.prompt is not None:
        return
    if not request.messages:
        raise InvalidRequestError("messages must contain at least one message", param="messages")
    last = request.messages[-1]
    if last.role == "user" and not (last.content or "").strip():
        raise InvalidRequestError("the message is empty", param="messages")
    if request.max_tokens is not None and request.max_tokens < 1:
        raise InvalidRequestError("max_tokens must be at least 1", param="max_tokens")
