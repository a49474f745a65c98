"""Fixtures for the model store tests.

- ``make_gguf``: writes small but real GGUF files with ``gguf.GGUFWriter`` (chosen metadata, a few
  tensors of random data).
- ``hub``: a Hugging Face hub stand-in (``http.server`` in a thread on 127.0.0.1) serving
  ``/api/models/{repo}/tree/main``, ``/api/models/{repo}`` and ``/{repo}/resolve/main/{file}`` with
  Range support, and able to cut a download after N bytes, ignore Range, serve wrong bytes or demand
  a token. It records every request.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import gguf
import numpy as np
import pytest

from openwen.config import Settings, load_settings

MakeGGUF = Callable[..., Path]


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


@pytest.fixture
def make_gguf() -> MakeGGUF:
    return write_gguf


@pytest.fixture
def store_settings(tmp_path: Path) -> Settings:
    return load_settings(models_dir=str(tmp_path / "models")).settings


# -- the hub stand-in ---------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]


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

    def add(self, repo: str, files: dict[str, bytes]) -> None:
        self.repos.setdefault(repo, {}).update(files)

    def gets(self, file: str) -> list[Request]:
        return [r for r in self.requests if r.method == "GET" and r.path.endswith("/" + file)]


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
        self.wfile.write(body)


@pytest.fixture
def hub() -> Iterator[Hub]:
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


@pytest.fixture
def hub_settings(hub: Hub, tmp_path: Path) -> Settings:
    return load_settings(models_dir=str(tmp_path / "models"), hub_endpoint=hub.url).settings
