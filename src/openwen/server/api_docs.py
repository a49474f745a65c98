"""The interactive API docs at ``/docs``: Swagger UI served by this server, never from a CDN.

Swagger UI's files come from the ``fastapi-offline`` package (mounted at ``/docs/static``); the
page loads them and its own starter ``/docs/init.js`` (``web/js/api-docs.js``; no inline
script), under a Content-Security-Policy that allows only this server. ``api_docs = false``
turns the page off; ``/openapi.json`` stays.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

from openwen.server.guard import route_policy

DOCS_CSP = "; ".join([
    "default-src 'self'", "script-src 'self'", "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:", "connect-src 'self'", "object-src 'none'", "base-uri 'none'",
    "frame-ancestors 'none'",
])

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>openwen API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css">
<link rel="icon" href="/docs/static/favicon.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
"""


def swagger_dir() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).resolve().parent / "static"


def install_docs(app: FastAPI) -> None:
    """Add ``/docs`` (the page), ``/docs/init.js`` and ``/docs/static/...`` to ``app``."""
    init_js = (Path(__file__).resolve().parent / "web" / "js" / "api-docs.js").read_bytes()
    headers = {"Content-Security-Policy": DOCS_CSP, "X-Content-Type-Options": "nosniff",
               "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}

    @route_policy(cross_site_reads=True)
    def docs() -> HTMLResponse:
        return HTMLResponse(PAGE, headers=headers)

    @route_policy(cross_site_reads=True)
    def init() -> Response:
        return Response(init_js, media_type="text/javascript", headers=headers)

    app.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False)
    app.add_api_route("/docs/init.js", init, methods=["GET"], include_in_schema=False)
    files = route_policy(cross_site_reads=True)(StaticFiles(directory=swagger_dir()))
    app.mount("/docs/static", files, name="docs-static")
