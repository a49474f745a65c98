"""The engine seam: a chat request in, a stream of typed events out.

Every engine (embedded llama.cpp, a remote OpenAI-compatible upstream) implements :class:`Engine`.
Cancellation is the consumer's: closing the async iterator (or cancelling the task reading it) stops
generation; the embedded engine stops within one token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from openwen.messages import StreamEvent
from openwen.requests import ChatRequest


@dataclass(frozen=True)
class Capabilities:
    tools: bool = True
    thinking: bool = False
    grammar: bool = False
    logprobs: bool = False
    embeddings: bool = False


@dataclass(frozen=True)
class ModelInfo:
    """A model an engine can serve, as listed by ``/v1/models`` and ``openwen models``."""

    id: str
    owned_by: str = "openwen"
    context_length: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Engine(Protocol):
    """An inference backend. Implementations must be safe to call from one event loop."""

    name: str
    capabilities: Capabilities

    def models(self) -> list[ModelInfo]:
        """The models this engine serves."""
        ...

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Generate an answer. The last event is always :class:`~openwen.messages.Done`."""
        ...

    def count_tokens(self, request: ChatRequest) -> int:
        """Tokens the rendered prompt takes (best effort for remote engines)."""
        ...

    async def aclose(self) -> None:
        """Free the model and threads."""
        ...
