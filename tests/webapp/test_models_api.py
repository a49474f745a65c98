"""The web app's model library API against a hub stand-in on 127.0.0.1: the library with
capabilities and profiles, the catalog against free memory, a background download that shows up
in the library when done, who may change the library, profile layers, derivatives, and the
profile applied to a chat's answer."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from webapp_helpers import ScriptedEngine, Signed, events, make_app

from openwen.chat.service import ChatService
from openwen.config import Settings, load_settings
from openwen.models.profiles import SMOLLM2_EXAMPLES, SMOLLM2_SYSTEM
from openwen.models.store import ModelStore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "models"))
from hub_standin import Hub, serving, write_gguf  # noqa: E402

REPO = "acme/tiny-GGUF"
FILE = "tiny-Q4_K_M.gguf"


@pytest.fixture
def hub() -> Iterator[Hub]:
    with serving() as state:
        yield state


@pytest.fixture
def settings(tmp_path: Path, hub: Hub) -> Settings:
    return load_settings(home=str(tmp_path / "home"), n_threads=2, n_ctx=2048,
                         hub_endpoint=hub.url).settings


def wait_download(client: Signed, spec: str, timeout: float = 60) -> dict[str, Any]:
    end = time.monotonic() + timeout
    while True:
        jobs = [j for j in client.get("/api/models/downloads").json()["downloads"]
                if j["spec"] == spec]
        if jobs and jobs[-1]["state"] not in ("queued", "running", "verifying"):
            return jobs[-1]
        assert time.monotonic() < end, jobs
        time.sleep(0.05)


def test_library_lists_profiles_and_first_run(alice: Signed) -> None:
    data = alice.get("/api/models").json()
    assert data["default"] == "scripted" and data["models"][0]["id"] == "scripted"
    assert data["is_admin"] and data["can_change"] and not data["users_may_pull"]
    assert data["first_run"]["only_demo"] is True  # only the bundled SmolLM2 is installed
    catalog = alice.get("/api/models/catalog").json()
    names = [m["name"] for m in catalog["models"]]
    assert names[0].startswith("qwen") and "smollm2:135m" in names
    first = catalog["models"][0]
    assert first["memory_needed"] > first["size"]
    assert isinstance(first["fits"], bool) and catalog["memory_free"] > 0
    if catalog["recommended"] is not None:
        fitting = next(m for m in catalog["models"] if m["name"] == catalog["recommended"])
        assert fitting["fits"] and fitting["name"].startswith("qwen3.")


def test_download_appears_in_the_library(alice: Signed, hub: Hub, tmp_path: Path,
                                         settings: Settings) -> None:
    payload = write_gguf(tmp_path / FILE, payload_floats=40_000,
                         chat_template="{{ tools }}{{ tool_calls }}<think>").read_bytes()
    hub.add(REPO, {FILE: payload})
    r = alice.post("/api/models/downloads", json={"spec": REPO})
    assert r.status_code == 202, r.text
    job = wait_download(alice, REPO)
    assert job["state"] == "done" and job["model"] == REPO and job["completed"] == len(payload)
    # the picker lists what the model store has: the new model is there at once
    assert ModelStore(settings).resolve(REPO).path.read_bytes() == payload
    alice.delete(f"/api/models/downloads/{job['id']}")
    assert alice.get("/api/models/downloads").json()["downloads"] == []


def test_bad_downloads(alice: Signed, hub: Hub) -> None:
    r = alice.post("/api/models/downloads", json={"spec": "not a model"})
    assert r.status_code == 404 and r.json()["error"]["param"] == "spec"
    assert alice.post("/api/models/downloads", json={"spec": "acme/missing-GGUF"}
                      ).status_code == 202
    job = wait_download(alice, "acme/missing-GGUF")
    assert job["state"] == "error" and job["error_code"] == "not_found"
    assert alice.post("/api/models/downloads/987654/cancel").status_code == 404
    assert alice.post("/api/models/downloads", json={"spec": ""}).status_code == 400


def test_only_admins_change_the_library_unless_allowed(alice: Signed, bob: Signed,
                                                        hub: Hub, tmp_path: Path) -> None:
    hub.add(REPO, {FILE: write_gguf(tmp_path / FILE).read_bytes()})
    assert bob.get("/api/models").json()["can_change"] is False
    r = bob.post("/api/models/downloads", json={"spec": REPO})
    assert r.status_code == 403 and r.json()["error"]["code"] == "admin_only"
    assert bob.post("/api/models/remove", json={"model": "smollm2"}).status_code == 403
    assert bob.put("/api/models/policy", json={"users_may_pull": True}).status_code == 403
    assert alice.put("/api/models/policy", json={"users_may_pull": True}).json() == {
        "users_may_pull": True}
    assert bob.get("/api/models").json()["can_change"] is True
    assert bob.post("/api/models/downloads", json={"spec": REPO}).status_code == 202
    assert wait_download(bob, REPO)["state"] == "done"
    # the bundled model cannot be removed by anyone
    r = alice.post("/api/models/remove", json={"model": "smollm2"})
    assert r.status_code == 400 and "bundled" in r.json()["error"]["message"]
    assert alice.post("/api/models/remove", json={"model": REPO}).json() == {"removed": REPO}


def test_profile_layers_and_derivatives(alice: Signed, bob: Signed) -> None:
    def smollm2(client: Signed) -> dict[str, Any]:
        r = client.put("/api/models/profile", json={"model": "smollm2", "scope": "user"})
        assert r.status_code == 200, r.text
        return r.json()["profile"]

    assert smollm2(alice)["system"] == SMOLLM2_SYSTEM and smollm2(alice)["tools"] is False
    r = alice.put("/api/models/profile", json={"model": "smollm2", "scope": "server",
                                               "system": "Be brief.", "temperature": 0.3})
    assert r.json()["profile"]["system"] == "Be brief."
    r = bob.put("/api/models/profile", json={"model": "smollm2", "scope": "user",
                                             "temperature": 0.9, "tools": True})
    assert r.json()["profile"]["sampling"]["temperature"] == 0.9
    assert r.json()["profile"]["system"] == "Be brief."  # the admin's, under bob's own
    assert smollm2(alice)["sampling"]["temperature"] == 0.3  # bob's change is his alone
    r = bob.put("/api/models/profile", json={"model": "smollm2", "scope": "server",
                                             "system": "x"})
    assert r.status_code == 403
    r = alice.put("/api/models/profile", json={"model": "nope", "scope": "user"})
    assert r.status_code == 404
    r = alice.put("/api/models/profile", json={"model": "smollm2", "temperature": 7})
    assert r.status_code == 400 and r.json()["error"]["param"] == "temperature"
    assert len(smollm2(alice)["examples"]) == len(SMOLLM2_EXAMPLES) and smollm2(alice)["arithmetic"] is True
    r = bob.put("/api/models/profile", json={"model": "smollm2", "scope": "user",
                                             "examples": [], "arithmetic": False})
    assert r.json()["profile"]["examples"] == [] and r.json()["profile"]["arithmetic"] is False
    assert len(smollm2(alice)["examples"]) == len(SMOLLM2_EXAMPLES)  # bob's own layer only
    # the Defaults form sends only its own fields: bob's examples and calculator choice stay
    r = bob.put("/api/models/profile", json={"model": "smollm2", "scope": "user",
                                             "system": "Short.", "temperature": None,
                                             "top_p": None, "tools": True})
    got = r.json()["profile"]
    assert got["examples"] == [] and got["arithmetic"] is False and got["system"] == "Short."
    assert got["sampling"]["temperature"] == 0.3  # null cleared bob's 0.9: the admin's shows
    r = bob.put("/api/models/profile", json={"model": "smollm2", "examples": [{"user": "Q"}]})
    assert r.status_code == 400  # an example needs both sides

    r = alice.post("/api/models/derive", json={"name": "terse", "base": "smollm2",
                                               "system": "One word answers."})
    assert r.status_code == 201, r.text
    assert r.json()["model"]["base"] == "smollm2"
    assert alice.post("/api/models/derive", json={"name": "terse", "base": "smollm2"}
                      ).status_code == 400
    assert alice.post("/api/models/derive", json={"name": "a/b", "base": "smollm2"}
                      ).status_code == 400
    assert bob.post("/api/models/derive", json={"name": "x", "base": "smollm2"}).status_code == 403
    r = alice.put("/api/models/profile", json={"model": "terse", "scope": "user"})
    assert r.json()["profile"]["system"] == "One word answers."
    assert r.json()["profile"]["base"] == "smollm2"
    assert alice.post("/api/models/remove", json={"model": "terse"}).json() == {
        "removed": "terse"}


def test_set_default(alice: Signed) -> None:
    assert alice.post("/api/models/default", json={"model": "smollm2"}).json() == {
        "default": "smollm2"}
    assert alice.get("/api/settings").json()["values"]["ui.default_model"] == "smollm2"
    assert alice.post("/api/models/default", json={"model": "nope"}).status_code == 404


@pytest.fixture
def smollm2_app(settings: Settings, engine: ScriptedEngine, embedder: Any) -> FastAPI:
    """The scripted engine standing in for smollm2: what the chat asks it for is recorded."""
    engine.name = "smollm2"
    from webapp_helpers import ScriptedRegistry

    service = ChatService(settings, registry=ScriptedRegistry(engine))  # type: ignore[arg-type]
    return make_app(settings, service, embedder=embedder)


def test_a_chat_gets_its_models_profile(smollm2_app: FastAPI, engine: ScriptedEngine) -> None:
    from webapp_helpers import signup

    with TestClient(smollm2_app) as client:
        alice = Signed(client, signup(client, "alice"))
        cid = alice.post("/api/conversations", json={}).json()["conversation"]["id"]
        found = dict(events(alice.post(f"/api/conversations/{cid}/messages",
                                       json={"content": "What is the capital of France?"}).text))
        assert "end" in found or "done" in found
        request = engine.requests[-1]
        assert request.messages[0].role == "system"
        assert request.messages[0].content == SMOLLM2_SYSTEM
        assert request.sampling.temperature == 0.0
        assert request.tools == ()  # the profile keeps tools off for the 135M model
        assert "context" not in found or not found["context"].get("tools")
        # the chat's own settings win
        alice.patch(f"/api/conversations/{cid}", json={
            "system_prompt": "Speak like a pirate.", "settings": {"temperature": 1.0}})
        alice.post(f"/api/conversations/{cid}/messages", json={"content": "Hi"})
        request = engine.requests[-1]
        assert request.messages[0].content == "Speak like a pirate."
        assert request.sampling.temperature == 1.0
