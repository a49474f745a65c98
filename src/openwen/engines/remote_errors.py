"""Map an upstream's HTTP error answer to an openwen error, keeping secrets out of messages.

The upstream's own message is kept (it is usually the most useful part), with the API key scrubbed
from it in case the upstream echoes it back.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from openwen.errors import (
    InvalidRequestError,
    ModelNotFoundError,
    OpenwenError,
    OverloadedError,
    UpstreamError,
)

MAX_MESSAGE_CHARS = 500
KEY_HINT = "set remote_api_key (OPENWEN_REMOTE_API_KEY)"


def redact_url(url: str) -> str:
    """``url`` without user:password and query string, fit for logs and error messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def scrub(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ``***``."""
    return text.replace(secret, "***") if secret else text


def parse_error_body(body: bytes) -> tuple[str, dict[str, Any]]:
    """The upstream's message and its error object (``{}`` when it sent none).

    Understands ``{"error": {"message": ...}}`` (OpenAI, vLLM, llama-server), ``{"error": "..."}``
    (Ollama), ``{"detail": ...}`` (FastAPI) and ``{"message": ...}``; anything else is shown as
    text.
    """
    text = body.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return _shorten(text) or "(empty answer)", {}
    if not isinstance(data, dict):
        return _shorten(text), {}
    error = data.get("error", data)
    if isinstance(error, str):
        return _shorten(error), {}
    if not isinstance(error, dict):
        return _shorten(text), {}
    message = error.get("message") or error.get("detail") or error.get("msg") or text
    if not isinstance(message, str):
        message = json.dumps(message)
    return _shorten(message), error


def _shorten(text: str) -> str:
    if len(text) <= MAX_MESSAGE_CHARS:
        return text
    return text[: MAX_MESSAGE_CHARS - 3] + "..."


def is_model_not_found(status: int, message: str, error: dict[str, Any]) -> bool:
    """A 404 about the model (vLLM, OpenAI, Ollama) rather than about the URL."""
    if status != 404:
        return False
    return error.get("code") == "model_not_found" or "model" in message.lower()


def retry_after_seconds(value: str | None) -> int:
    try:
        return max(1, int(float(value))) if value else 1
    except ValueError:
        return 1


def error_for_status(
    status: int,
    message: str,
    error: dict[str, Any],
    *,
    where: str,
    has_key: bool,
    retry_after: str | None = None,
) -> OpenwenError:
    """The openwen error for an upstream answer ``status`` (other than a model-not-found 404).

    ``where`` is the redacted URL the request went to; ``has_key`` says whether a key was sent.
    """
    if status in (400, 422):
        param = error.get("param") if isinstance(error.get("param"), str) else None
        code = error.get("code") if isinstance(error.get("code"), str) else None
        return InvalidRequestError(message, param=param, code=code)
    if status in (401, 403):
        hint = "check remote_api_key" if has_key else f"no API key is configured; {KEY_HINT}"
        return UpstreamError(
            f"upstream rejected the API key (HTTP {status} from {where}; {hint}): {message}"
        )
    if status in (429, 503):
        return OverloadedError(
            f"the upstream is busy (HTTP {status}): {message}",
            retry_after=retry_after_seconds(retry_after),
        )
    if status == 404:
        return UpstreamError(
            f"the upstream has no {where} (HTTP 404: {message}); openwen uses the base URL as "
            "given, so include the API prefix the server expects (usually /v1)"
        )
    return UpstreamError(f"the upstream answered HTTP {status} from {where}: {message}")


def model_not_found(name: str | None, available: list[str], message: str) -> ModelNotFoundError:
    err = ModelNotFoundError(name or "(upstream default)", available)
    err.message = f"{err.message} (upstream said: {message})"
    err.args = (err.message,)
    return err
