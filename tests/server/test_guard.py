"""The request guard on the real app (create_app with the web app), in process: which requests
are answered at all (Host, Origin, Sec-Fetch-Site, content type), per route policy. The same
attacks are replayed against a real ``openwen serve`` in tests/security/test_attacks.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from openwen.config import Settings
from openwen.server.application import create_app
from openwen.server.guard import normal_origin, policy_for, same_origin, split_host

LOCAL = "http://127.0.0.1:8800"
JSON = {"Content-Type": "application/json"}


def make(tmp_path: Path, **overrides: Any) -> FastAPI:
    return create_app(Settings(home=tmp_path / "home", **overrides))


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    return make(tmp_path)


def client(app: FastAPI, base: str = LOCAL) -> TestClient:
    return TestClient(app, base_url=base)


def code(response: Any) -> str:
    return str(response.json()["error"]["code"])


@pytest.mark.parametrize("host", ["localhost:8800", "127.0.0.1", "[::1]:8800", "app.localhost"])
def test_loopback_hosts_are_answered(app: FastAPI, host: str) -> None:
    assert client(app).get("/health", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8800", "10.0.0.1", "",
                                  "localhost.evil.example", "127.0.0.1.nip.io"])
def test_other_hosts_are_refused_everywhere(app: FastAPI, host: str) -> None:
    for path in ("/health", "/", "/v1/models", "/api/session", "/nowhere", "/docs"):
        r = client(app).get(path, headers={"Host": host})
        assert r.status_code == 403 and code(r) == "host_not_allowed", (path, r.text)


def test_allowed_hosts_and_required_keys(tmp_path: Path) -> None:
    named = make(tmp_path, allowed_hosts="box.lan, other.lan")
    assert client(named).get("/health", headers={"Host": "box.lan:8800"}).status_code == 200
    assert client(named).get("/health", headers={"Host": "evil.lan"}).status_code == 403
    # with keys required (listening beyond loopback) any name may reach it: keys guard it
    keyed = make(tmp_path, require_api_key=True)
    assert client(keyed).get("/health", headers={"Host": "box.example"}).status_code == 200


def test_origins(app: FastAPI, tmp_path: Path) -> None:
    c = client(app)
    assert c.get("/health", headers={"Origin": LOCAL}).status_code == 200
    assert c.get("/health", headers={"Origin": "https://127.0.0.1:8800"}).status_code == 200
    for origin in ("http://evil.example", "null", "http://127.0.0.1:9999", "garbage"):
        r = c.get("/health", headers={"Origin": origin})
        assert r.status_code == 403 and code(r) == "cross_origin", origin
    allowed = make(tmp_path, allowed_origins="https://app.example")
    c = client(allowed)
    r = c.get("/health", headers={"Origin": "https://app.example"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://app.example"
    preflight = c.options("/v1/chat/completions", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert preflight.status_code == 200
    assert c.get("/health", headers={"Origin": "https://evil.example"}).status_code == 403


def test_sec_fetch_site(app: FastAPI) -> None:
    c = client(app)
    assert c.get("/health", headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200
    assert c.get("/health", headers={"Sec-Fetch-Site": "none"}).status_code == 200
    assert c.get("/health", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    # a link from another site may open the app's page and its files, not the APIs
    nav = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    assert c.get("/", headers=nav).status_code == 200
    assert c.get("/static/css/app.css", headers=nav).status_code == 200
    assert c.get("/docs", headers=nav).status_code == 200
    assert c.get("/api/session", headers=nav).status_code == 403
    # and a cross-site write to a page route is still refused
    assert c.post("/", headers=nav, content=b"{}").status_code == 403


def test_bodies_must_be_json(app: FastAPI) -> None:
    c = client(app)
    for media in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                  "application/jsonp"):
        r = c.post("/v1/chat/completions", content=b"{}", headers={"Content-Type": media})
        assert r.status_code == 415 and code(r) == "unsupported_media_type", media
    for media in ("application/json", "application/json; charset=utf-8",
                  "application/vnd.api+json"):
        r = c.post("/v1/chat/completions", content=b"{}", headers={"Content-Type": media})
        assert r.status_code == 400, (media, r.text)  # parsed: the body itself is wrong
    # no Content-Type at all: fine from a non-browser client, refused from a browser
    r = c.post("/v1/chat/completions", content=b"{}")
    assert r.status_code == 400, r.text
    r = c.post("/v1/chat/completions", content=b"{}", headers={"Origin": LOCAL})
    assert r.status_code == 415, r.text
    # a bodiless POST needs no type (e.g. logout)
    assert c.post("/api/auth/logout").status_code == 401


def test_raw_uploads_may_have_any_type(app: FastAPI) -> None:
    r = client(app).post("/api/knowledge/documents?filename=a.txt", content=b"hello",
                         headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 401  # reached the route: not signed in


def test_policies_are_found_by_route_not_prefix(app: FastAPI) -> None:
    def policy(method: str, path: str) -> Any:
        return policy_for({"type": "http", "method": method, "path": path, "app": app,
                           "headers": [], "root_path": ""})

    assert policy("POST", "/api/knowledge/documents").any_body
    assert not policy("POST", "/api/knowledge/search").any_body
    assert policy("GET", "/").cross_site_reads and policy("GET", "/c/123").cross_site_reads
    assert policy("GET", "/static/js/main.js").cross_site_reads
    assert not policy("GET", "/api/session").cross_site_reads
    assert not policy("POST", "/api/chat").cross_site_reads  # an unknown route: strict


def test_helpers() -> None:
    assert normal_origin("HTTP://LocalHost:80") == "http://localhost"
    assert normal_origin("https://[::1]:8443") == "https://[::1]:8443"
    assert normal_origin("null") is None and normal_origin("http://") is None
    assert split_host("[::1]:8800") == ("::1", 8800) and split_host("a.b") == ("a.b", None)
    assert same_origin("http://127.0.0.1:8800", "127.0.0.1:8800")
    assert same_origin("http://localhost", "localhost:80")
    assert not same_origin("http://localhost:8801", "localhost:8800")


def test_docs_are_local_and_can_be_turned_off(app: FastAPI, tmp_path: Path) -> None:
    c = client(app)
    page = c.get("/docs")
    assert page.status_code == 200 and "script-src 'self'" in page.headers[
        "content-security-policy"]
    assert "//" not in page.text.replace("<!doctype", "")  # no absolute URL: nothing external
    assert c.get("/docs/static/swagger-ui-bundle.js").status_code == 200
    assert "SwaggerUIBundle" in c.get("/docs/init.js").text
    assert c.get("/openapi.json").json()["info"]["title"] == "openwen"
    off = client(make(tmp_path, api_docs=False))
    assert off.get("/docs").status_code == 404
    assert off.get("/openapi.json").status_code == 200
