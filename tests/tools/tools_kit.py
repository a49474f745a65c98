"""Helpers for tool tests, imported as ``tools_kit``: an HTTP server on 127.0.0.1 with
scripted routes."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

Reply = tuple[int, dict[str, str], bytes]


@dataclass
class LocalServer:
    """Routes map a path to a reply (status, headers, body) or a function of the request."""

    routes: dict[str, Reply | Callable[[BaseHTTPRequestHandler], Reply]] = field(
        default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def serve_locally() -> Iterator[LocalServer]:
    state = LocalServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            state.requests.append((self.path, dict(self.headers.items())))
            route = state.routes.get(urlsplit(self.path).path, (404, {}, b"not found"))
            status, headers, body = route(self) if callable(route) else route
            self.send_response(status)
            for key, value in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.block_on_close = False
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def slow_reply(seconds: float, reply: Reply) -> Callable[[BaseHTTPRequestHandler], Reply]:
    def answer(_: BaseHTTPRequestHandler) -> Reply:
        time.sleep(seconds)
        return reply

    return answer
