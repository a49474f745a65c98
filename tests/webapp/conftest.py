"""Web app fixtures: the app on a fresh SQLite file, signed-in clients, the scripted engine and
the real bundled model."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from webapp_helpers import (
    LazyMiniLM,
    ScriptedEngine,
    ScriptedRegistry,
    Signed,
    add_user,
    login,
    make_app,
    signup,
)

from openwen.chat.service import ChatService
from openwen.config import Settings, load_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(home=str(tmp_path / "home"), n_threads=2, n_ctx=2048).settings


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine()


@pytest.fixture
def scripted_service(settings: Settings, engine: ScriptedEngine) -> ChatService:
    return ChatService(settings, registry=ScriptedRegistry(engine))  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def real_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatService]:
    """A chat service on the real bundled model, loaded once for the session."""
    home = tmp_path_factory.mktemp("real-home")
    settings = load_settings(home=str(home), n_threads=2, n_ctx=2048).settings
    service = ChatService(settings)
    asyncio.run(service.engine_for(None))
    yield service
    asyncio.run(service.aclose())


@pytest.fixture(scope="session")
def embedder() -> Iterator[LazyMiniLM]:
    """all-MiniLM-L6-v2 for documents and memory, loaded once when a test first embeds."""
    loaded = LazyMiniLM()
    yield loaded
    loaded.close()


@pytest.fixture
def app(settings: Settings, scripted_service: ChatService, embedder: LazyMiniLM) -> FastAPI:
    return make_app(settings, scripted_service, embedder=embedder)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@pytest.fixture
def alice(client: TestClient) -> Signed:
    """The first user (the admin)."""
    return Signed(client, signup(client, "alice"))


@pytest.fixture
def bob(app: FastAPI, alice: Signed) -> Signed:
    """A second, ordinary user with their own cookie jar (added by alice)."""
    add_user(alice.client, alice.headers, "bob")
    other = TestClient(app)
    return Signed(other, login(other, "bob"))
