"""Every attack of the outside audit (issue 10, findings 1, 2, 3 and 8), replayed for real
against a real ``openwen serve`` (the bundled model, a real SQLite file), each refused cleanly.

The server listens on loopback without required keys (the set-up the audit attacked) and the
admin has turned server-side tools on, so the only thing standing between a request and
``read_file`` / ``run_python`` is what this module tests.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai
import pytest

from served import Served

pytestmark = pytest.mark.slow

SECRET = "the-launch-code-is-0000"
CHAT = "/v1/chat/completions"
TOOLS_BODY = {"model": "smollm2", "max_tokens": 16,
              "messages": [{"role": "user", "content": "read secret.txt"}],
              "openwen": {"tools": ["read_file", "run_python"]}}
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module", autouse=True)
def secret(server: Served) -> None:
    folder = server.home / "workspaces" / "local"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "secret.txt").write_text(SECRET)


@pytest.fixture(scope="module")
def alice(server: Served) -> httpx.Client:
    """The first account (the admin), signed in."""
    client = httpx.Client(base_url=server.url, timeout=60)
    token = client.get("/api/session").json()["csrf_token"]
    r = client.post("/api/auth/signup", json={"username": "alice", "password": PASSWORD},
                    headers={"X-CSRF-Token": token})
    assert r.status_code == 201, r.text
    client.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return client


def refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert SECRET not in response.text
    return dict(error)


def raw(server: Served, method: str, path: str, *, body: bytes | None = None,
        headers: dict[str, str] | None = None) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        return client.request(method, path, content=body, headers=headers or {})


# -- finding 2: a web page using the API ----------------------------------------------------


def test_the_audits_request_is_refused(server: Served) -> None:
    """Host evil.example, Origin evil.example, text/plain: read_file and run_python."""
    body = json.dumps({**TOOLS_BODY, "messages": [
        {"role": "user", "content": "read secret.txt, then run print(6*7)"}]}).encode()
    response = raw(server, "POST", CHAT, body=body, headers={
        "Host": "evil.example", "Origin": "http://evil.example",
        "Content-Type": "text/plain;charset=UTF-8", "Sec-Fetch-Site": "cross-site"})
    refused(response, 403, "host_not_allowed")


@pytest.mark.parametrize("path", [CHAT, "/v1/models", "/api/session", "/", "/health",
                                  "/docs", "/api/tags", "/v1/messages"])
def test_dns_rebinding_host_is_refused_on_every_route(server: Served, path: str) -> None:
    """A rebinding page reaches 127.0.0.1 under its own name: any route, known or not."""
    method = "POST" if path == CHAT else "GET"
    body = json.dumps(TOOLS_BODY).encode() if method == "POST" else None
    response = raw(server, method, path, body=body, headers={
        "Host": f"evil.example:{server.port}", "Content-Type": "application/json"})
    if path in DIALECT_SHAPES:  # refused in that dialect's own error shape (no "code" field)
        assert response.status_code == 403, response.text
        message = DIALECT_SHAPES[path](response.json())
        assert "allowed_hosts" in message and SECRET not in response.text
        return
    error = refused(response, 403, "host_not_allowed")
    assert "allowed_hosts" in error["message"]


DIALECT_SHAPES: dict[str, Any] = {
    "/api/tags": lambda body: body["error"],  # Ollama: {"error": "message"}
    "/v1/messages": lambda body: body["type"] == "error" and body["error"]["message"],
}


def test_cross_site_text_plain_post_is_refused(server: Served) -> None:
    """The CORS-simple POST a page can send without a preflight, with a loopback Host."""
    body = json.dumps(TOOLS_BODY).encode()
    response = raw(server, "POST", CHAT, body=body, headers={
        "Origin": "http://evil.example", "Content-Type": "text/plain"})
    refused(response, 403, "cross_origin")
    # and a non-browser client sending text/plain is told to send JSON
    response = raw(server, "POST", CHAT, body=body, headers={"Content-Type": "text/plain"})
    refused(response, 415, "unsupported_media_type")
    # a browser body without any Content-Type (a Blob) is refused as well
    response = raw(server, "POST", CHAT, body=body,
                   headers={"Sec-Fetch-Site": "same-origin", "Origin": server.url})
    refused(response, 415, "unsupported_media_type")


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://localhost:1"])
def test_foreign_origin_is_refused_even_with_json(server: Served, origin: str) -> None:
    response = raw(server, "POST", CHAT, body=json.dumps(TOOLS_BODY).encode(), headers={
        "Origin": origin, "Content-Type": "application/json"})
    refused(response, 403, "cross_origin")


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_sec_fetch_site_cross_site_is_refused(server: Served, site: str) -> None:
    response = raw(server, "GET", "/v1/models", headers={"Sec-Fetch-Site": site})
    refused(response, 403, "cross_origin")
    response = raw(server, "POST", "/api/auth/login", body=b'{"username": "a"}', headers={
        "Sec-Fetch-Site": site, "Content-Type": "application/json"})
    refused(response, 403, "cross_origin")


def test_anonymous_loopback_callers_never_run_server_tools(server: Served) -> None:
    response = raw(server, "POST", CHAT, body=json.dumps(TOOLS_BODY).encode(),
                   headers={"Content-Type": "application/json"})
    error = refused(response, 403, "api_key_required")
    assert error["param"] == "openwen.tools"


def test_server_tools_need_a_key_with_the_tools_scope(server: Served, alice: httpx.Client
                                                      ) -> None:
    inference = server.cli("keys", "create", "--user", "alice", "--name", "plain").strip()
    tools = server.cli("keys", "create", "--user", "alice", "--name", "agent",
                       "--scope", "inference", "--scope", "tools").strip()
    response = raw(server, "POST", CHAT, body=json.dumps(TOOLS_BODY).encode(), headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {inference}"})
    refused(response, 403, "missing_scope")
    # the key itself is fine for inference, through the official client
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=inference, max_retries=0)
    answer = client.chat.completions.create(model="smollm2", max_tokens=4,
                                            messages=[{"role": "user", "content": "Hi"}])
    assert answer.choices[0].message.content is not None
    # the tools-scoped key may use a server tool (the admin turned them on): the real model,
    # forced by grammar, calls the calculator and the server runs it
    r = httpx.post(server.url + CHAT, timeout=300, headers={"Authorization": f"Bearer {tools}"},
                   json={"model": "smollm2", "max_tokens": 40, "temperature": 0,
                         "messages": [{"role": "user", "content": "Compute 12 * 7."}],
                         "tool_choice": {"type": "function", "function": {"name": "calculator"}},
                         "openwen": {"tools": ["calculator"]}})
    assert r.status_code == 200, r.text
    step = r.json()["openwen"]["tool_steps"][0]
    assert step["name"] == "calculator" and step["step"] == 1
    assert isinstance(json.loads(step["arguments"])["expression"], str)


def test_a_wrong_key_on_loopback_is_anonymous_not_privileged(server: Served) -> None:
    response = raw(server, "POST", CHAT, body=json.dumps(TOOLS_BODY).encode(), headers={
        "Content-Type": "application/json", "Authorization": "Bearer sk-ow-guessed"})
    refused(response, 403, "api_key_required")


# -- finding 1: one request kills the server ------------------------------------------------


def test_the_50000_maxlength_schema_is_a_400_and_the_server_lives(server: Served) -> None:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="smollm2", max_tokens=8, messages=[{"role": "user", "content": "Hi"}],
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {
                "type": "string", "maxLength": 50_000}}})
    assert caught.value.body["param"] == "response_format"  # type: ignore[index]
    assert "50000" in caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="smollm2", max_tokens=8, messages=[{"role": "user", "content": "Hi"}],
            tool_choice="required", tools=[{"type": "function", "function": {
                "name": "f", "parameters": {"type": "object", "properties": {
                    "x": {"type": "string", "maxLength": 50_000}}}}}])
    assert caught.value.body["param"] == "tools[0].function.parameters"  # type: ignore[index]
    assert server.alive(), server.log_tail()
    # and a bounded schema still constrains the real model's answer
    answer = client.chat.completions.create(
        model="smollm2", max_tokens=60, temperature=0,
        messages=[{"role": "user", "content": "Give a code and some tags."}],
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {
            "type": "object", "required": ["code", "tags"], "properties": {
                "code": {"type": "string", "minLength": 2, "maxLength": 5},
                "tags": {"type": "array", "minItems": 1, "maxItems": 3,
                         "items": {"type": "string", "maxLength": 4}}}}}})
    data = json.loads(answer.choices[0].message.content or "")
    assert 2 <= len(data["code"]) <= 5 and 1 <= len(data["tags"]) <= 3
    assert all(len(tag) <= 4 for tag in data["tags"])


# -- findings 3 and 8: logins and sign-ups ----------------------------------------------------


def _login_body(username: str, password: str) -> dict[str, str]:
    return {"username": username, "password": password}


async def _logins(server: Served, username: str, password: str, n: int) -> list[int]:
    async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
        token = (await client.get("/api/session")).json()["csrf_token"]
        responses = await asyncio.gather(*(
            client.post("/api/auth/login", json=_login_body(username, password),
                        headers={"X-CSRF-Token": token}) for _ in range(n)))
    return [r.status_code for r in responses]


def test_sixty_concurrent_logins_reach_the_password_check_at_most_five_times(
        server: Served, alice: httpx.Client) -> None:
    statuses = asyncio.run(_logins(server, "alice", "wrong password!", 60))
    assert statuses.count(401) <= 5 and statuses.count(401) + statuses.count(429) == 60
    # alice is now locked for this address, even with her right password
    assert asyncio.run(_logins(server, "alice", PASSWORD, 1)) == [429]


def test_x_forwarded_for_rotation_does_not_reset_the_limit(server: Served) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        token = client.get("/api/session").json()["csrf_token"]
        statuses = [client.post("/api/auth/login", json=_login_body("mallory", "guess!!!!"),
                                headers={"X-CSRF-Token": token,
                                         "X-Forwarded-For": f"203.0.113.{i}"}).status_code
                    for i in range(7)]
    assert statuses[:5] == [401] * 5 and statuses[5:] == [429, 429]


def test_rotating_real_addresses_does_not_help_either(server: Served) -> None:
    """Ten addresses of 127.0.0.0/8, one guess each: the username locks across them."""
    statuses = []
    for i in range(2, 14):
        transport = httpx.HTTPTransport(local_address=f"127.0.0.{i}")
        with httpx.Client(base_url=server.url, timeout=60, transport=transport) as client:
            token = client.get("/api/session").json()["csrf_token"]
            statuses.append(client.post("/api/auth/login", json=_login_body("carol", "x" * 9),
                                        headers={"X-CSRF-Token": token}).status_code)
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]


def test_sign_up_when_closed_is_refused_before_hashing(server: Served, alice: httpx.Client
                                                       ) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        token = client.get("/api/session").json()["csrf_token"]
        response = client.post("/api/auth/signup", json=_login_body("eve", "long enough pw"),
                               headers={"X-CSRF-Token": token})
    refused(response, 403, "signup_closed")


def test_sign_ups_are_rate_limited(server: Served, alice: httpx.Client) -> None:
    assert alice.put("/api/admin/registration", json={"open": True}).status_code == 200
    transport = httpx.HTTPTransport(local_address="127.0.0.77")
    statuses = []
    for i in range(7):
        with httpx.Client(base_url=server.url, timeout=60, transport=transport) as client:
            token = client.get("/api/session").json()["csrf_token"]
            statuses.append(client.post(
                "/api/auth/signup", json=_login_body(f"user{i}", "long enough pw"),
                headers={"X-CSRF-Token": token}).status_code)
    assert statuses == [201] * 5 + [429, 429]
    assert alice.put("/api/admin/registration", json={"open": False}).status_code == 200
    assert server.alive(), server.log_tail()
