"""The chat service: the one place every interface (CLI, HTTP API, web app) asks for an answer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace

from openwen.config import Settings
from openwen.engines.base import Engine
from openwen.engines.registry import EngineRegistry
from openwen.errors import InvalidRequestError
from openwen.messages import Message, StreamEvent
from openwen.models.profiles import (
    NAME_RE,
    derivative_file,
    load_derivatives,
    profile_for,
    root_of,
)
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
        if request.model and is_derivative(self.settings, request.model):
            request = await asyncio.to_thread(apply_derivative, request, self.settings)
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


def is_derivative(settings: Settings, model: str) -> bool:
    """``model`` names a derivative made with ``openwen create`` (one file check)."""
    if not NAME_RE.fullmatch(model):
        return False
    return derivative_file(settings.models_path, model).is_file()


def apply_derivative(request: ChatRequest, settings: Settings) -> ChatRequest:
    """A request to a derivative goes to its base model with the derivative's defaults filling
    what the request leaves unset: system prompt (when it has none), sampling, thinking."""
    assert request.model is not None
    profile, capabilities = profile_for(request.model, settings)
    base = root_of(request.model, load_derivatives(settings.models_path))
    messages = request.messages
    if profile.system and not any(m.role in ("system", "developer") for m in messages):
        messages = (Message(role="system", content=profile.system), *messages)
    thinking = request.thinking if request.thinking is not None else profile.thinking
    if not capabilities.thinking:
        thinking = request.thinking
    defaults = profile.sampling_for(thinking)
    s = request.sampling
    sampling = replace(
        s,
        temperature=s.temperature if s.temperature is not None else defaults.temperature,
        top_p=s.top_p if s.top_p is not None else defaults.top_p,
        top_k=s.top_k if s.top_k is not None else defaults.top_k,
        min_p=s.min_p if s.min_p is not None else defaults.min_p,
    )
    return replace(request, model=base, messages=messages, sampling=sampling, thinking=thinking)
