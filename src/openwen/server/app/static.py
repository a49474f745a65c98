"""The web app's page and static assets (shipped in the package under ``server/web``).

``/`` and ``/c/<conversation id>`` serve the single page; ``/static/...`` its scripts, styles and
vendored libraries, gzip-compressed, revalidated by ETag on every load (``no-cache``), so an
upgrade is picked up at once. Every response carries a strict Content-Security-Policy: scripts
and styles only from this server, no inline scripts, images only from here or ``data:``, no
framing. Model output is sanitised before it reaches the page; the policy is the second wall.
"""

from __future__ import annotations

import gzip
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.middleware.gzip import GZipMiddleware
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openwen.server.guard import route_policy

WEB_DIR = Path(__file__).resolve().parent.parent / "web"

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class WithHeaders:
    """Adds fixed headers to every response of the wrapped app."""

    def __init__(self, app: ASGIApp, headers: dict[str, str]):
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.headers]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def static_app() -> ASGIApp:
    files = StaticFiles(directory=WEB_DIR, check_dir=True)
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
    # a page elsewhere may link to or embed-load public files: GETs from other sites are fine
    return route_policy(cross_site_reads=True)(
        GZipMiddleware(WithHeaders(files, headers), minimum_size=512))


def page_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @route_policy(cross_site_reads=True)  # a link from another site opens the app
    def page(request: Request) -> Response:
        html = (WEB_DIR / "index.html").read_bytes()
        headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
        if "gzip" in request.headers.get("accept-encoding", ""):
            html = gzip.compress(html, 6)
            headers["Content-Encoding"] = "gzip"
        return HTMLResponse(html, headers=headers)

    router.add_api_route("/", page, methods=["GET"])
    router.add_api_route("/c/{conversation_id}", page, methods=["GET"])
    return router
