"""Small real GGUF files (``write_gguf``) and a model hub stand-in on 127.0.0.1 (``http.server``
in a thread) following the real layouts of Hugging Face (also as a mirror below a path prefix)
and ModelScope; see ``tests/models/conftest.py`` for what it serves. ``serving()`` runs one;
tests outside ``tests/models`` import it from here.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import gguf
import numpy as np


def write_gguf(
    path: Path,
    *,
    arch: str = "llama",
    name: str | None = "Tiny Test Model",
    context_length: int | None = 4096,
    file_type: int | None = int(gguf.LlamaFileType.MOSTLY_F16),
    tokens: list[str] | None = None,
    bos_id: int | None = 1,
    eos_id: int | None = 2,
    chat_template: str | None = "{% for m in messages %}{{ m.content }}{% endfor %}",
    extra: dict[str, Any] | None = None,
    payload_floats: int = 1024,
    seed: int = 0,
    quantized_weight: gguf.GGMLQuantizationType | None = None,
) -> Path:
    """A valid GGUF file with the given metadata and ``payload_floats`` float32s of random data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), arch=arch)
    if name is not None:
        writer.add_name(name)
    if context_length is not None:
        writer.add_context_length(context_length)
    if file_type is not None:
        writer.add_file_type(file_type)
    writer.add_token_list(tokens or ["<unk>", "<s>", "</s>", "hello", "world"])
    if bos_id is not None:
        writer.add_bos_token_id(bos_id)
    if eos_id is not None:
        writer.add_eos_token_id(eos_id)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    for key, value in (extra or {}).items():
        if isinstance(value, str):
            writer.add_string(key, value)
        else:
            writer.add_uint32(key, value)
    rng = np.random.default_rng(seed)
    writer.add_tensor("token_embd.weight", rng.random((payload_floats // 64, 64), dtype=np.float32))
    if quantized_weight is not None:
        block, type_size = gguf.GGML_QUANT_SIZES[quantized_weight]
        raw = rng.integers(0, 255, size=(4, 4 * type_size), dtype=np.uint8)
        writer.add_tensor("blk.0.ffn_up.weight", raw, raw_dtype=quantized_weight)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class Hub:
    """State shared between a test and the stand-in server's handler threads."""

    repos: dict[str, dict[str, bytes]] = field(default_factory=dict)
    cut_after: dict[str, int] = field(default_factory=dict)  # file -> bytes, once
    ignore_range: bool = False
    serve_instead: dict[str, bytes] = field(default_factory=dict)  # file -> wrong bytes
    publish_sha: bool = True  # lfs.oid in the tree listing
    listed_size: dict[str, int] = field(default_factory=dict)  # file -> size the listing claims
    tree_api: bool = True
    token: str | None = None
    requests: list[Request] = field(default_factory=list)
    url: str = ""
    prefix: str = ""  # a mirror below a path: every Hugging Face route starts with it
    throttle: float = 0.0  # seconds to wait after each 64 KiB of a file (a slow link)

    def add(self, repo: str, files: dict[str, bytes]) -> None:
        self.repos.setdefault(repo, {}).update(files)

    def gets(self, file: str) -> list[Request]:
        return [r for r in self.requests if r.method == "GET"
                and (r.path.endswith("/" + file) or r.query.get("FilePath") == file)]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: Hub

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    def _record(self) -> None:
        self.hub.requests.append(
            Request(
                self.command,
                unquote(urlsplit(self.path).path),
                {k.lower(): v for k, v in self.headers.items()},
                {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()},
            )
        )

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _authorised(self) -> bool:
        if self.hub.token is None:
            return True
        if self.headers.get("Authorization") == f"Bearer {self.hub.token}":
            return True
        self._send(401, b'{"error": "Invalid credentials"}')
        return False

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        self._record()
        if not self._authorised():
            return
        path = unquote(urlsplit(self.path).path)
        query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        if m := re.fullmatch(r"/api/v1/models/([^/]+/[^/]+)/repo/files", path):
            return self._ms_files(m.group(1), query)
        if m := re.fullmatch(r"/api/v1/models/([^/]+/[^/]+)/repo", path):
            if query.get("Revision") != "master" or "FilePath" not in query:
                return self._send(400, b'{"Code": 400, "Message": "bad request"}')
            return self._file(m.group(1), query["FilePath"])
        if self.hub.prefix:
            if not path.startswith(self.hub.prefix + "/"):
                return self._send(404, b'{"error": "not found"}')
            path = path[len(self.hub.prefix):]
        if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/main", path):
            return self._tree(m.group(1))
        if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)", path):
            return self._info(m.group(1))
        if m := re.fullmatch(r"/([^/]+/[^/]+)/resolve/main/(.+)", path):
            return self._file(m.group(1), m.group(2))
        self._send(404, b'{"error": "not found"}')

    def _tree(self, repo: str) -> None:
        if not self.hub.tree_api or repo not in self.hub.repos:
            return self._send(404, b'{"error": "Repository not found"}')
        entries = []
        for name, data in self.hub.repos[repo].items():
            size = self.hub.listed_size.get(name, len(data))
            entry: dict[str, Any] = {"type": "file", "path": name, "size": size}
            if self.hub.publish_sha:
                entry["lfs"] = {"oid": _sha(data), "size": size, "pointerSize": 134}
            entries.append(entry)
        self._send(200, json.dumps(entries).encode(), {"Content-Type": "application/json"})

    def _ms_files(self, repo: str, query: dict[str, str]) -> None:
        if repo not in self.hub.repos:  # ModelScope answers a missing repo with an error body
            body = {"Code": 10010205001, "Message": "model not found", "Success": False}
            return self._send(404, json.dumps(body).encode())
        files = []
        for name, data in self.hub.repos[repo].items():
            entry: dict[str, Any] = {"Name": name.rsplit("/", 1)[-1], "Path": name, "Type": "blob",
                                     "Size": self.hub.listed_size.get(name, len(data))}
            if self.hub.publish_sha:
                entry["Sha256"] = _sha(data)
            files.append(entry)
        body = {"Code": 200, "Data": {"Files": files}, "Success": True}
        self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def _info(self, repo: str) -> None:
        if repo not in self.hub.repos:
            return self._send(404, b'{"error": "Repository not found"}')
        siblings = [{"rfilename": name} for name in self.hub.repos[repo]]
        body = json.dumps({"id": repo, "siblings": siblings}).encode()
        self._send(200, body, {"Content-Type": "application/json"})

    def _file(self, repo: str, name: str) -> None:
        files = self.hub.repos.get(repo, {})
        if name not in files:
            return self._send(404, b"Entry not found")
        real = files[name]
        data = self.hub.serve_instead.get(name, real)
        meta = {
            "X-Linked-Etag": f'"{_sha(real)}"',
            "X-Linked-Size": str(len(real)),
            "ETag": f'"{_sha(real)}"',
            "Accept-Ranges": "bytes",
        }
        if self.command == "HEAD":
            return self._send(200, data, meta)
        start = 0
        range_header = self.headers.get("Range")
        if range_header and not self.hub.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", range_header).group(1))  # type: ignore[union-attr]
            if start >= len(data):
                return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        for key, value in meta.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = self.hub.cut_after.pop(name, None)
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if not self.hub.throttle:
            self.wfile.write(body)
            return
        try:
            for at in range(0, len(body), 1 << 16):
                self.wfile.write(body[at:at + (1 << 16)])
                self.wfile.flush()
                time.sleep(self.hub.throttle)
        except (BrokenPipeError, ConnectionResetError):  # the client cancelled
            self.close_connection = True




@contextmanager
def serving() -> Iterator[Hub]:
    """A running stand-in hub; its address is ``hub.url``."""
    state = Hub()
    handler = type("Handler", (_Handler,), {"hub": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
