"""Exception hierarchy. Each error maps to one HTTP status and one OpenAI error type."""

from __future__ import annotations


class OpenwenError(Exception):
    """Base class. ``status`` and ``type`` shape the OpenAI error object on the API."""

    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, object]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class ConfigError(OpenwenError):
    """Settings or config file are invalid."""

    status = 500
    type = "server_error"
    code = "invalid_config"


class InvalidRequestError(OpenwenError):
    """The request is malformed or asks for something impossible."""

    status = 400
    type = "invalid_request_error"


class ContextLengthError(InvalidRequestError):
    """The prompt (plus requested tokens) does not fit in the model's context."""

    code = "context_length_exceeded"

    def __init__(self, prompt_tokens: int, n_ctx: int, *, param: str | None = "messages"):
        super().__init__(
            f"the prompt is {prompt_tokens} tokens long but the model's context holds "
            f"{n_ctx} tokens; shorten the conversation or raise n_ctx",
            param=param,
        )
        self.prompt_tokens = prompt_tokens
        self.n_ctx = n_ctx


class AuthenticationError(OpenwenError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDeniedError(OpenwenError):
    status = 403
    type = "permission_error"
    code = "forbidden"


class NotFoundError(OpenwenError):
    status = 404
    type = "not_found_error"
    code = "not_found"


class ModelNotFoundError(NotFoundError):
    """An unknown model name; the message lists what is available."""

    code = "model_not_found"

    def __init__(self, name: str, available: list[str], *, param: str | None = "model"):
        listing = ", ".join(available) if available else "none"
        super().__init__(f"model '{name}' not found; available: {listing}", param=param)
        self.name = name
        self.available = available


class ModelFileError(OpenwenError):
    """A model file that is missing, corrupt or not GGUF."""

    status = 500
    type = "server_error"
    code = "model_file_invalid"


class PayloadTooLargeError(OpenwenError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class OverloadedError(OpenwenError):
    """The engine's queue is full. ``retry_after`` seconds go into the Retry-After header."""

    status = 503
    type = "server_error"
    code = "overloaded"

    def __init__(self, message: str = "the server is busy; retry shortly", retry_after: int = 1):
        super().__init__(message)
        self.retry_after = retry_after


class EngineError(OpenwenError):
    """The engine failed while generating (upstream died, llama.cpp error)."""

    status = 502
    type = "server_error"
    code = "engine_error"


class UpstreamError(EngineError):
    """A remote upstream answered with an error or went away."""

    code = "upstream_error"


class DownloadError(OpenwenError):
    """A model download failed (network, checksum, not found)."""

    code = "download_failed"
