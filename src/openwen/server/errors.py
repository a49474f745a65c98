"""Every error leaves the server as an error object with the right HTTP status.

By default that is OpenAI's ``{"error": {"message", "type", "param", "code"}}``: openwen's own
errors carry their status and type; validation errors are 400 naming the ``param``; unknown routes
404; anything unexpected is a logged 500 with a generic message (bad input never gets here: it is
a 400 before). A dialect whose clients expect another shape (Anthropic, Ollama) registers it for
its paths with :func:`register_error_shape`; every handler here (and the body-size limit) then
renders errors under those paths with it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from openwen.errors import InvalidRequestError, OpenwenError, OverloadedError

log = logging.getLogger(__name__)

HTTP_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
}


class ShuttingDownError(OpenwenError):
    """The server is stopping: new work is refused, long streams are ended."""

    status = 503
    type = "server_error"
    code = "shutting_down"

    def __init__(self, message: str = "the server is shutting down; retry shortly"):
        super().__init__(message)


class ClientDisconnected(Exception):  # noqa: N818 - a condition, not a failure
    """The client went away before the answer was ready."""


class BodyTooLarge(StarletteHTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"the request body is larger than the limit of {limit} bytes")


ErrorShape = Callable[[int, str, str, "str | None", "str | None"], dict[str, Any]]
"""``(status, message, type, param, code) -> body`` of an error response."""

_SHAPES: list[tuple[str, ErrorShape]] = []


def openai_shape(status: int, message: str, type_: str, param: str | None,
                 code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def register_error_shape(path_prefix: str, shape: ErrorShape) -> None:
    """Render errors of requests under ``path_prefix`` (e.g. ``/v1/messages``) with ``shape``.
    The longest matching prefix wins; everything else gets OpenAI's shape."""
    _SHAPES[:] = sorted([*(s for s in _SHAPES if s[0] != path_prefix), (path_prefix, shape)],
                        key=lambda s: -len(s[0]))


def shape_for(path: str) -> ErrorShape:
    return next((shape for prefix, shape in _SHAPES if path.startswith(prefix)), openai_shape)


def error_body(status: int, message: str, *, type_: str | None = None,
               param: str | None = None, code: str | None = None, path: str = ""
               ) -> dict[str, Any]:
    kind = type_ or HTTP_ERROR_TYPES.get(status, "server_error")
    return shape_for(path)(status, message, kind, param, code)


def error_response(exc: OpenwenError, path: str = "") -> JSONResponse:
    headers = {}
    if isinstance(exc, OverloadedError | ShuttingDownError):
        headers["Retry-After"] = str(getattr(exc, "retry_after", 1))
    body = shape_for(path)(exc.status, exc.message, exc.type, exc.param, exc.code)
    return JSONResponse(body, status_code=exc.status, headers=headers)


async def _openwen_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OpenwenError)
    if exc.status >= 500:
        log.warning("%s %s failed: %s", request.method, request.url.path, exc.message)
    return error_response(exc, request.url.path)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    first = errors[0] if errors else {}
    loc = [p for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
    param = ".".join(str(p) for p in loc) or None
    message = first.get("msg", "invalid request")
    return error_response(InvalidRequestError(f"{param}: {message}" if param else message,
                                              param=param), request.url.path)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if status == 404 and exc.detail == "Not Found":
        message = f"unknown URL: {request.method} {request.url.path}"
    elif status == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    code = "payload_too_large" if status == 413 else None
    return JSONResponse(error_body(status, message, code=code, path=request.url.path),
                        status_code=status, headers=exc.headers)


async def _disconnected(request: Request, exc: Exception) -> Response:
    return Response(status_code=499)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("%s %s: unexpected error", request.method, request.url.path, exc_info=exc)
    return JSONResponse(error_body(500, "internal server error", code="internal_error",
                                   path=request.url.path), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(OpenwenError, _openwen_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ClientDisconnected, _disconnected)
    app.add_exception_handler(Exception, _unexpected)
