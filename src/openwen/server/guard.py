"""The request guard: which requests the server answers at all, before any route runs.

One ASGI middleware (:class:`RequestGuard`) checks every request, whatever its path, so a route
or a whole API dialect added later is covered without doing anything:

1. **Host** (DNS rebinding): while API keys are not required (a loopback server), the ``Host``
   header must name a loopback host (``localhost``, ``*.localhost``, ``127.0.0.1``, ``[::1]``)
   or one of ``allowed_hosts``. A page on ``evil.example`` that re-points its name at 127.0.0.1
   sends ``Host: evil.example`` and is refused.
2. **Origin** (cross-site requests): a request whose ``Origin`` is neither this server's own
   (scheme aside, the same host and port as ``Host``) nor one of ``allowed_origins`` is refused,
   and so is one marked ``Sec-Fetch-Site: cross-site`` or ``same-site`` without such an origin.
   ``Origin: null`` (sandboxed frames, some redirects) is foreign.
3. **Content type**: a request with a body must say it is JSON (``application/json`` or
   ``application/*+json``), so a browser cannot send it cross-site without a CORS preflight (a
   ``text/plain`` or form POST needs none). A body without any ``Content-Type`` is accepted only
   from a non-browser client: one that sends neither ``Origin`` nor ``Sec-Fetch-Site``. The
   official openai, anthropic and ollama Python clients all send ``application/json`` (httpx's
   ``json=``); plain ``curl -d`` sends a form type and is told to add the header.

Refusals are 403 (Host, Origin) and 415 (content type), rendered by the app's own handler for
:class:`~openwen.errors.OpenwenError`, so each dialect's error shape applies.

**Route policies.** Every route gets the strict policy above unless it declares another one,
by decorating its endpoint (or marking the ASGI app it mounts) with :func:`route_policy`:

- ``route_policy(cross_site_reads=True)``: GET/HEAD from another site are fine (the page at
  ``/``, its static files, ``/docs``: a link from elsewhere must open them). Writes are still
  checked.
- ``route_policy(any_body=True)``: the body may be of any type (raw document uploads, which
  are CSRF-protected and need a preflight anyway).

A new route group (an API dialect under ``/v1/...`` or ``/api/...``) needs nothing here: the
default is strict, and the Host and Origin rules do not depend on the path. The policy is found
by matching the request against the app's routes, not by path prefix, so the web app's
``/api/...`` and an Ollama-style ``/api/chat`` are told apart by their routes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from openwen.errors import InvalidRequestError, OpenwenError, PermissionDeniedError
from openwen.server.auth import is_loopback

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
POLICY_ATTR = "openwen_route_policy"

F = TypeVar("F")


@dataclass(frozen=True)
class RoutePolicy:
    cross_site_reads: bool = False
    any_body: bool = False


STRICT = RoutePolicy()


def route_policy(*, cross_site_reads: bool = False, any_body: bool = False
                 ) -> Callable[[F], F]:
    """Mark an endpoint (or a mounted ASGI app) with a policy other than the strict default."""
    policy = RoutePolicy(cross_site_reads=cross_site_reads, any_body=any_body)

    def mark(target: F) -> F:
        setattr(target, POLICY_ATTR, policy)
        return target

    return mark


class UnsupportedMediaTypeError(InvalidRequestError):
    status = 415
    code = "unsupported_media_type"


def split_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def normal_origin(origin: str) -> str | None:
    """``scheme://host[:port]`` lower-cased, default port dropped; None if not an origin."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    scheme = parts.scheme.lower()
    if port is None or port == DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host.lower()}"
    return f"{scheme}://{host.lower()}:{port}"


def split_host(host: str) -> tuple[str, int | None]:
    """``Host`` header value as (name, port)."""
    host = host.strip().lower()
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        name, _, port = host.partition(":")
    return name, int(port) if port.isdigit() else None


class RequestGuard:
    """The middleware (see the module docstring). ``check_host``: enforce the Host allow-list
    (the app turns it on while API keys are not required)."""

    def __init__(self, app: ASGIApp, *, check_host: bool, allowed_hosts: Iterable[str] = (),
                 allowed_origins: Iterable[str] = ()):
        self.app = app
        self.check_host = check_host
        self.allowed_hosts = {h.lower() for h in allowed_hosts}
        self.allowed_origins = {o for o in map(normal_origin, allowed_origins) if o}
        self._hosts: dict[str, bool] = {}  # Host header -> allowed (bounded, see _remember)
        self._policies = PolicyCache()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            self.check(scope)
        except OpenwenError as refusal:
            await self._refuse(scope, receive, send, refusal)
            return
        await self.app(scope, receive, send)

    def check(self, scope: Scope) -> None:
        headers = _headers(scope)
        host = headers.get("host", "")
        if self.check_host and not self.host_allowed(host):
            raise PermissionDeniedError(
                f"this server only answers requests for a loopback host (localhost, 127.0.0.1), "
                f"not for '{host[:100]}'; add the name to allowed_hosts to use it",
                code="host_not_allowed")
        policy = self._policies.get(scope)
        method = scope.get("method", "GET")
        if not (policy.cross_site_reads and method in ("GET", "HEAD")):
            self.check_origin(headers, host)
        if not policy.any_body and _has_body(headers):
            check_content_type(headers)

    def host_allowed(self, host: str) -> bool:
        allowed = self._hosts.get(host)
        if allowed is None:
            name, _ = split_host(host)
            allowed = (is_loopback(name) or name.endswith(".localhost")
                       or name in self.allowed_hosts)
            _remember(self._hosts, host, allowed)
        return allowed

    def check_origin(self, headers: dict[str, str], host: str) -> None:
        origin = headers.get("origin")
        if origin is not None:
            normal = normal_origin(origin)
            if normal is not None and (normal in self.allowed_origins
                                       or same_origin(normal, host)):
                return
            raise PermissionDeniedError(
                f"requests from the web origin '{origin[:100]}' are refused; add it to "
                "allowed_origins to let its pages use this server", code="cross_origin")
        site = headers.get("sec-fetch-site", "")
        if site in ("cross-site", "same-site"):
            raise PermissionDeniedError(
                "cross-site requests are refused (Sec-Fetch-Site: "
                f"{site}); add the page's origin to allowed_origins", code="cross_origin")

    async def _refuse(self, scope: Scope, receive: Receive, send: Send,
                      refusal: OpenwenError) -> None:
        request = Request(scope, receive)
        app = scope.get("app")
        handler = getattr(app, "exception_handlers", {}).get(OpenwenError)
        if handler is None:
            from openwen.server.errors import error_response

            response: Any = error_response(refusal)
        else:
            response = await handler(request, refusal)
        await response(scope, receive, send)


def same_origin(origin: str, host: str) -> bool:
    """Whether the normalised ``origin`` names the host and port of the ``Host`` header."""
    parts = urlsplit(origin)
    default = DEFAULT_PORTS.get(parts.scheme)
    name, port = split_host(host)
    return (parts.hostname or "") == name.strip("[]") and (parts.port or default) == (
        port or default)


def check_content_type(headers: dict[str, str]) -> None:
    value = headers.get("content-type")
    if value is None:
        if "origin" not in headers and "sec-fetch-site" not in headers:
            return  # not a browser: nothing to be tricked into sending
        raise UnsupportedMediaTypeError("send the body as JSON with 'Content-Type: "
                                        "application/json'")
    media = value.split(";", 1)[0].strip().lower()
    main, _, sub = media.partition("/")
    if main == "application" and (sub == "json" or sub.endswith("+json")):
        return
    raise UnsupportedMediaTypeError(
        f"the body must be JSON ('Content-Type: application/json'), not '{media[:100]}'")


CACHE_SIZE = 1024


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    """Keep ``value`` unless ``cache`` is full (a client sending ever new paths or hosts cannot
    grow it; what is not kept is computed again)."""
    if len(cache) < CACHE_SIZE:
        cache[key] = value


class PolicyCache:
    """:func:`policy_for` once per (method, path) while the app's routes stay the same: routing
    a request is a walk over every route, and the guard did it once more for each request."""

    def __init__(self) -> None:
        self._routes: Any = None
        self._count = -1
        self._policies: dict[tuple[Any, ...], RoutePolicy] = {}

    def get(self, scope: Scope) -> RoutePolicy:
        routes = getattr(getattr(scope.get("app"), "router", None), "routes", None)
        count = len(routes) if routes is not None else -1
        if routes is not self._routes or count != self._count:
            self._routes, self._count = routes, count
            self._policies = {}
        key = (scope["type"], scope.get("method"), scope.get("root_path", ""), scope["path"])
        policy = self._policies.get(key)
        if policy is None:
            policy = policy_for(scope)
            _remember(self._policies, key, policy)
        return policy


def policy_for(scope: Scope) -> RoutePolicy:
    """The policy of the route that will answer ``scope`` (strict when none matches)."""
    found = _route_for(getattr(getattr(scope.get("app"), "router", None), "routes", ()), scope)
    if found is None:
        return STRICT
    route, child = found
    for owner in (route, getattr(route, "endpoint", None), child.get("endpoint"),
                  getattr(route, "app", None)):
        policy = getattr(owner, POLICY_ATTR, None)
        if isinstance(policy, RoutePolicy):
            return policy
    return STRICT


def _route_for(routes: Iterable[Any], scope: Scope) -> tuple[Any, Scope] | None:
    """The route (and its child scope) routing would pick, looking inside included routers
    (which recent FastAPI keeps as one route each); None when nothing matches."""
    partial = None
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.NONE:
            continue
        inner = getattr(getattr(route, "original_router", None), "routes", None)
        found = _route_for(inner, scope) if inner is not None else (route, child)
        if match is Match.FULL and found is not None:
            return found
        partial = partial or found
    return partial


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1")
            for k, v in scope.get("headers", ())}


def _has_body(headers: dict[str, str]) -> bool:
    length = headers.get("content-length", "0").strip()
    return "transfer-encoding" in headers or (length != "0" and length != "")
