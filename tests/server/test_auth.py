"""API keys: `openwen keys`, bearer auth on the API, and refusing to listen openly without keys."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest
from serverkit import running_server, server_settings
from typer.testing import CliRunner

from openwen.cli.main import app as cli
from openwen.config import load_settings
from openwen.errors import ConfigError
from openwen.server.auth import check_bind, is_loopback, keys_required, open_database
from openwen.storage.models import ApiKey

HELLO = [{"role": "user", "content": "Hi"}]


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def create_key(name: str = "test") -> str:
    secret = run("keys", "create", "--name", name).strip()
    assert secret.startswith("sk-ow-")
    return secret


def list_keys() -> list[dict[str, object]]:
    return json.loads(run("keys", "list", "--json"))  # type: ignore[no-any-return]


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.53", True), ("localhost", True), ("::1", True),
    ("[::1]", True), ("0.0.0.0", False), ("::", False), ("192.168.1.10", False),
    ("example.com", False), ("", False),
])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_keys_required_beyond_loopback_or_when_asked() -> None:
    assert not keys_required(load_settings().settings)
    assert keys_required(load_settings(require_api_key=True).settings)
    assert keys_required(load_settings(host="0.0.0.0").settings)


def test_keys_create_list_revoke() -> None:
    assert list_keys() == []
    secret = create_key("laptop")
    keys = list_keys()
    assert len(keys) == 1
    key = keys[0]
    assert key["name"] == "laptop" and key["user"] == "admin" and key["revoked"] is False
    assert secret.startswith(str(key["prefix"])) and secret not in json.dumps(keys)
    # stored hashed: the secret itself is nowhere in the database
    db = open_database(load_settings().settings)
    with db.read() as session:
        stored = session.query(ApiKey).one()
        assert stored.key_hash != secret and len(stored.key_hash) == 64
    db_file = Path(load_settings().settings.database.removeprefix("sqlite:///"))
    db.dispose()
    assert secret.encode() not in db_file.read_bytes()
    assert "revoked key" in run("keys", "revoke", str(key["id"]))
    assert list_keys()[0]["revoked"] is True


def test_keys_carry_scopes() -> None:
    create_key("plain")
    run("keys", "create", "--name", "agent", "--scope", "inference,tools")
    scopes = {k["name"]: k["scopes"] for k in list_keys()}
    assert scopes == {"plain": ["inference"], "agent": ["inference", "tools"]}
    result = CliRunner().invoke(cli, ["keys", "create", "--scope", "admin"])
    assert result.exit_code == 1 and "unknown scope(s) admin" in result.output
    assert len(list_keys()) == 2  # nothing stored for the refused one


def test_revoking_an_unknown_key_fails_cleanly() -> None:
    result = CliRunner().invoke(cli, ["keys", "revoke", "999"])
    assert result.exit_code == 1
    assert "no API key with id 999" in result.output


def test_refuses_to_listen_beyond_loopback_without_keys() -> None:
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 1
    assert "refusing to listen on 0.0.0.0" in result.output
    assert "openwen keys create" in result.output
    create_key()
    check_bind(load_settings(host="0.0.0.0").settings)  # with a key it would start


def test_required_on_loopback_without_any_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="no API key exists"):
        check_bind(load_settings(require_api_key=True).settings)


@pytest.mark.slow
def test_api_requires_a_valid_key(tmp_path: Path) -> None:
    secret = create_key()
    settings = server_settings(load_settings().settings.home, require_api_key=True)
    with running_server(settings) as server:
        with httpx.Client(base_url=server.url) as http:
            missing = http.get("/v1/models")
            assert missing.status_code == 401
            assert missing.json()["error"]["type"] == "authentication_error"
            assert "Authorization: Bearer" in missing.json()["error"]["message"]
            wrong = http.get("/v1/models", headers={"Authorization": "Bearer sk-ow-wrong"})
            assert wrong.status_code == 401
            assert wrong.json()["error"]["code"] == "invalid_api_key"
            assert http.get("/health").status_code == 200  # operations stay open
            assert http.post("/v1/chat/completions", json={"messages": HELLO}).status_code == 401
        with pytest.raises(openai.AuthenticationError):
            server.client(api_key="sk-ow-not-a-key").models.list()
        client = server.client(api_key=secret)
        answer = client.chat.completions.create(model="smollm2", messages=HELLO,  # type: ignore[arg-type]
                                                max_tokens=2)
        assert answer.choices[0].message.content
        assert list_keys()[0]["last_used_at"] is not None
        run("keys", "revoke", str(list_keys()[0]["id"]))
        with pytest.raises(openai.AuthenticationError):
            client.models.list()
