"""The knowledge HTTP router on a real uvicorn server (127.0.0.1, a free port), with the
server's embedding service behind a ServiceEmbedder, as the app wires it."""

from __future__ import annotations

import asyncio
import socket
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Header, Request

from openwen.config import Settings
from openwen.errors import AuthenticationError
from openwen.knowledge import KnowledgeBase, KnowledgeSettings, ServiceEmbedder
from openwen.knowledge.embeddings import EmbeddingService
from openwen.server.errors import install_error_handlers
from openwen.server.knowledge_api import create_knowledge_router
from openwen.storage import Database, Storage

LIMIT = 20_000


def make_app(storage: Storage, settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = EmbeddingService(settings)
        embedder = ServiceEmbedder(service, asyncio.get_running_loop())
        app.state.kb = KnowledgeBase(storage.db, embedder,
                                     KnowledgeSettings(document_max_bytes=LIMIT))
        yield
        await service.aclose()

    def current_user(x_user: str = Header("")) -> int:
        user = storage.users.get_by_name(x_user) if x_user else None
        if user is None:
            raise AuthenticationError("sign in first")
        return user.id

    def knowledge(request: Request) -> KnowledgeBase:
        return request.app.state.kb

    app = FastAPI(lifespan=lifespan)
    install_error_handlers(app)

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    app.include_router(create_knowledge_router(user_id=current_user, knowledge=knowledge))
    return app


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Storage]]:
    home = tmp_path_factory.mktemp("api")
    db = Database(f"sqlite:///{home / 'api.db'}")
    db.upgrade()
    storage = Storage(db)
    for name in ("alice", "bob"):
        storage.users.create(name, None)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = make_app(storage, Settings(home=home, n_threads=2))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/api/knowledge", storage  # /health is at the root
    uv.should_exit = True
    thread.join(timeout=10)
    db.dispose()


def client(server: tuple[str, Storage], user: str) -> httpx.Client:
    return httpx.Client(base_url=server[0], headers={"X-User": user}, timeout=60)


def upload(c: httpx.Client, path: Path, **params: str) -> httpx.Response:
    return c.post("/documents", params={"filename": path.name, **params},
                  content=path.read_bytes())


def test_documents_search_and_citation_links(server, docs: Path) -> None:
    with client(server, "alice") as alice:
        added = upload(alice, docs / "lease.md", collection="home")
        assert added.status_code == 201, added.text
        doc = added.json()["document"]
        assert doc["collections"] == ["home"] and doc["chunks"] == 3
        again = upload(alice, docs / "lease.md")
        assert again.status_code == 200 and again.json()["created"] is False
        assert [d["id"] for d in alice.get("/documents").json()["documents"]] == [doc["id"]]
        hits = alice.post("/search", json={"query": "when is rent due", "collection": "home",
                                           "limit": 2}).json()["passages"]
        assert hits[0]["section"] == "Apartment lease > Rent"
        passage = alice.get(f"/passages/{hits[0]['chunk_id']}").json()
        text = alice.get(f"/documents/{doc['id']}/text").json()["text"]
        assert text[passage["char_start"]:passage["char_end"]] == passage["text"]
        context = alice.post("/context", json={"query": "boiler", "collection": "home"}).json()
        assert context["mode"] == "whole" and "[1] lease.md" in context["text"]
        with client(server, "bob") as bob:
            for method, url in (("GET", f"/documents/{doc['id']}"),
                                ("GET", f"/documents/{doc['id']}/text"),
                                ("DELETE", f"/documents/{doc['id']}"),
                                ("GET", f"/passages/{hits[0]['chunk_id']}"),
                                ("PUT", f"/collections/mine/documents/{doc['id']}")):
                answer = bob.request(method, url)
                assert answer.status_code == 404, (method, url)
                assert answer.json()["error"]["type"] == "not_found_error"
            assert bob.post("/search", json={"query": "rent"}).json()["passages"] == []
        assert alice.delete(f"/documents/{doc['id']}").json()["deleted"] is True
        assert alice.get("/documents").json()["documents"] == []


def test_bad_uploads_are_clear_errors(server, docs: Path, tmp_path: Path) -> None:
    with client(server, "alice") as alice:
        junk = {"collection": "junk"}
        unsupported = alice.post("/documents", params={"filename": "a.exe", **junk},
                                 content=b"MZ")
        assert unsupported.status_code == 400
        assert unsupported.json()["error"]["code"] == "unsupported_document_type"
        empty = alice.post("/documents", params={"filename": "a.txt", **junk},
                           content=b"")
        assert empty.status_code == 400 and "empty" in empty.json()["error"]["message"]
        big = alice.post("/documents", params={"filename": "big.txt", **junk},
                         content=b"word " * (LIMIT // 4))
        assert big.status_code == 413
        assert big.json()["error"]["code"] == "document_too_large"
        broken = alice.post("/documents", params={"filename": "x.pdf", **junk},
                            content=b"%PDF-1.4 broken")
        assert broken.status_code == 400 and broken.json()["error"]["param"] == "file"
        assert alice.get("/documents", params=junk).status_code == 404  # never created
        names = [c["name"] for c in alice.get("/collections").json()["collections"]]
        assert "junk" not in names
    leftovers = list(Path(tempfile.gettempdir()).glob("openwen-upload-*"))
    assert leftovers == []
    with httpx.Client(base_url=server[0]) as anonymous:
        assert anonymous.get("/documents").status_code == 401


def test_collections_and_conversations(server, docs: Path) -> None:
    url, storage = server
    with client(server, "alice") as alice:
        assert alice.post("/collections", json={"name": "garden"}).status_code == 201
        doc = upload(alice, docs / "plants.html").json()["document"]
        assert alice.put(f"/collections/garden/documents/{doc['id']}").json()["added"]
        assert alice.get("/collections").json()["collections"][0]["documents"] == 1
        assert alice.patch("/collections/garden", json={"name": "plants"}).status_code == 200
        listed = alice.get("/documents", params={"collection": "plants"}).json()["documents"]
        assert [d["id"] for d in listed] == [doc["id"]]
        user = storage.users.get_by_name("alice")
        chat = storage.conversations.create(user.id, "cactus chat")
        assert alice.put(f"/conversations/{chat.id}/documents/{doc['id']}").json()["added"]
        hits = alice.post("/search", json={"query": "cactus water",
                                           "conversation_id": chat.id}).json()["passages"]
        assert hits and hits[0]["document_id"] == doc["id"]
        with client(server, "bob") as bob:
            assert bob.put(f"/conversations/{chat.id}/documents/{doc['id']}"
                           ).status_code == 404
            assert bob.get("/documents", params={"collection": "plants"}).status_code == 404
        assert alice.delete(f"/conversations/{chat.id}/documents/{doc['id']}"
                            ).json()["removed"]
        assert alice.delete("/collections/plants").json()["deleted"] is True
        assert alice.delete(f"/documents/{doc['id']}").status_code == 200


def test_memories_api(server) -> None:
    with client(server, "alice") as alice, client(server, "bob") as bob:
        made = alice.post("/memories", json={"text": "My cat is called Pixel."})
        assert made.status_code == 201
        memory = made.json()
        assert [m["text"] for m in alice.get("/memories").json()["memories"]] == [
            "My cat is called Pixel."]
        assert bob.get("/memories").json()["memories"] == []
        assert bob.patch(f"/memories/{memory['id']}", json={"text": "x"}).status_code == 404
        edited = alice.patch(f"/memories/{memory['id']}", json={"text": "My cat is Pixel."})
        assert edited.json()["text"] == "My cat is Pixel."
        context = alice.post("/context", json={"query": "what is my cat's name?"}).json()
        assert [m["text"] for m in context["memories"]] == ["My cat is Pixel."]
        assert alice.put("/memory/settings", json={"auto_extract": True}).json() == {
            "enabled": True, "auto_extract": True}
        assert alice.delete("/memories").status_code == 400  # needs ?confirm=true
        assert alice.delete(f"/memories/{memory['id']}").json()["deleted"] is True
        assert alice.post("/memories", json={"text": ""}).status_code == 400


ADVERSARIAL_UPLOADS = {  # ~20 KB each; the quadratic parsers took 5 s to minutes on these
    "dots.txt": b"x" + b"." * (LIMIT - 100),
    "tags.html": b"<a " * ((LIMIT - 100) // 3),
    "hashes.md": b"# a" + b"#" * (LIMIT - 100) + b"b",
    "quotes.csv": b'"a",' * ((LIMIT - 100) // 4),
}


def test_adversarial_uploads_do_not_stall_the_server(server) -> None:
    """Issue 10, finding 4: one small upload froze /health for 11 s. Each upload must finish
    (indexed or refused cleanly) while /health keeps answering (generous bounds)."""
    root = server[0].removesuffix("/api/knowledge")
    slowest = [0.0]
    stop = threading.Event()

    def ping() -> None:
        with httpx.Client(base_url=root, timeout=60) as c:
            while not stop.is_set():
                began = time.monotonic()
                assert c.get("/health").status_code == 200
                slowest[0] = max(slowest[0], time.monotonic() - began)
                time.sleep(0.05)

    pinger = threading.Thread(target=ping, daemon=True)
    pinger.start()
    try:
        with client(server, "alice") as alice:
            for name, body in ADVERSARIAL_UPLOADS.items():
                began = time.monotonic()
                answer = alice.post("/documents", params={"filename": name,
                                                          "collection": "adversarial"},
                                    content=body)
                assert answer.status_code in (200, 201, 400), (name, answer.text)
                if answer.status_code == 400:
                    assert answer.json()["error"]["param"] == "file"
                assert time.monotonic() - began < 60, name
    finally:
        stop.set()
        pinger.join(timeout=30)
    assert slowest[0] < 3.0, f"/health took {slowest[0]:.1f} s during an upload"
