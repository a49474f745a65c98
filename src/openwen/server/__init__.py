"""The HTTP server: the OpenAI-compatible API (``openai/``), operations endpoints, auth, SSE."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from openwen.server.application import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":  # imported lazily: `import openwen.server.app` stays light
        from openwen.server.application import create_app

        return create_app
    raise AttributeError(name)
