"""Over the API, each key's user has their own prefix cache (issue 10, finding 11)."""

from __future__ import annotations

from serverkit import running_server, server_settings
from typer.testing import CliRunner

from openwen.cli.main import app as cli
from openwen.config import load_settings
from openwen.server.auth import open_database
from openwen.storage.users import UserRepo

SECRET = ("Remember for me: my passport number is X1234567 and my locker code is 8812. "
          + " ".join(f"Item {i} sits on shelf {i * 13 % 17}." for i in range(20)))


def key_for(username: str) -> str:
    result = CliRunner().invoke(cli, ["keys", "create", "--name", username, "--user", username])
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def cached(client, text: str) -> int:  # type: ignore[no-untyped-def]
    answer = client.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": text}], max_tokens=2,
        temperature=0)
    return int(answer.usage.prompt_tokens_details.cached_tokens)


def test_one_users_prompt_is_never_a_hit_for_another() -> None:
    home = load_settings().settings.home
    users = UserRepo(open_database(load_settings().settings))
    users.create("alice")
    users.create("bob")
    alice_key, bob_key = key_for("alice"), key_for("bob")
    settings = server_settings(home, require_api_key=True)
    with running_server(settings) as server:
        alice = server.client(api_key=alice_key)
        bob = server.client(api_key=bob_key)
        assert cached(alice, SECRET) == 0
        assert cached(alice, SECRET) > 0  # alice's own prompt is cached
        assert cached(bob, SECRET) == 0  # bob cannot probe it
        assert cached(bob, SECRET) > 0  # and bob's own copy is cached for bob
