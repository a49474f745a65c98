"""The MCP client against real servers written with the official ``mcp`` package (stdio and
streamable HTTP on 127.0.0.1), plus servers that hang, crash or answer garbage."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from openwen.config import Settings, load_settings
from openwen.errors import ConfigError
from openwen.tools.mcp import mcp_servers, tool_name
from openwen.tools.registry import load_tools

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

DEMO = str(Path(__file__).parent / "fixtures" / "mcp_demo_server.py")
HANG = "import time\ntime.sleep(120)"
DIE = "import sys\nprint('cannot find my config file', file=sys.stderr)\nsys.exit(3)"
JUNK = "import time\nwhile True:\n    print('this is not json', flush=True)\n    time.sleep(0.1)"


def with_servers(**servers: dict[str, Any]) -> Settings:
    return load_settings(mcp={"servers": servers}).settings


def stdio(*args: str, **extra: Any) -> dict[str, Any]:
    return {"command": sys.executable, "args": list(args), **extra}


@pytest.fixture
def http_server() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, DEMO, "http", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None, "the MCP test server exited"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_stdio_server_tools_appear_beside_the_builtins() -> None:
    registry = await load_tools(with_servers(demo=stdio(DEMO, "stdio")))
    try:
        assert registry.problems == {}
        assert "calculator" in registry and registry.get("calculator").source == "builtin"  # type: ignore[union-attr]
        add = registry.get("demo__add")
        assert add is not None and add.source == "mcp:demo"
        assert add.parameters["required"] == ["a", "b"]
        assert add.side_effects is False  # the server marks it read-only
        assert registry.get("demo__shout").side_effects is True  # type: ignore[union-attr]

        assert (await registry.call("demo__add", '{"a": 40, "b": 2}')).text == "42"
        bad = await registry.call("demo__add", {"a": "forty"})
        assert bad.error == "invalid_arguments" and "'b' is a required property" in bad.text
        failed = await registry.call("demo__fail", {"reason": "no luck"})
        assert failed.error == "mcp_error" and failed.text.startswith("Error:")
    finally:
        await registry.aclose()


async def test_streamable_http_server(http_server: str) -> None:
    registry = await load_tools(with_servers(web={"url": http_server,
                                                  "headers": {"X-Test": "yes"}}))
    try:
        assert registry.problems == {}
        assert (await registry.call("web__shout", {"text": "hi"})).text == "HI"
        assert registry.get("web__add").source == "mcp:web"  # type: ignore[union-attr]
    finally:
        await registry.aclose()


async def test_a_hanging_call_times_out_and_the_server_still_answers() -> None:
    registry = await load_tools(with_servers(demo=stdio(DEMO, "stdio", timeout=1)))
    try:
        out = await registry.call("demo__sleep", {"seconds": 30})
        assert out.error and "did not answer tools/call sleep within 1 seconds" in out.text
        assert (await registry.call("demo__add", {"a": 1, "b": 2})).text == "3"
    finally:
        await registry.aclose()


async def test_a_crash_mid_call_is_reported_and_the_next_call_reconnects(
        settings: Settings) -> None:
    registry = await load_tools(with_servers(demo=stdio(DEMO, "stdio")))
    try:
        crashed = await registry.call("demo__crash", {})
        assert crashed.error and "MCP server demo failed on tools/call crash" in crashed.text
        assert "crashing on purpose" in crashed.text  # the server's own last words
        assert (await registry.call("demo__add", {"a": 2, "b": 2})).text == "4"
        assert (settings.home / "logs" / "mcp-demo.log").exists()
    finally:
        await registry.aclose()


async def test_servers_that_hang_die_or_babble_never_block_the_others() -> None:
    settings = with_servers(
        demo=stdio(DEMO, "stdio"),
        hangs=stdio("-c", HANG, connect_timeout=1),
        dies=stdio("-c", DIE),
        babbles=stdio("-c", JUNK, connect_timeout=1),
    )
    registry = await load_tools(settings)
    try:
        assert "demo__add" in registry
        assert not [n for n in registry.names() if n.startswith(("hangs", "dies", "babbles"))]
        problems = registry.problems
        assert "did not start within 1 seconds" in problems["mcp:hangs"]
        assert "could not start" in problems["mcp:dies"]
        assert "cannot find my config file" in problems["mcp:dies"]
        assert "not MCP JSON-RPC" in problems["mcp:babbles"]
        assert (await registry.call("demo__add", {"a": 5, "b": 5})).text == "10"
    finally:
        await registry.aclose()


def test_config_shape_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config" / "openwen" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('port = 9000\n\n[mcp.servers.notes]\ncommand = "npx"\n'
                      'args = ["-y", "server"]\nenv = { LEVEL = "warn" }\ntimeout = 5\n\n'
                      '[mcp.servers.search]\nurl = "http://127.0.0.1:9/mcp"\n'
                      'headers = { Authorization = "Bearer x" }\n')
    settings = load_settings().settings
    assert settings.port == 9000
    servers = mcp_servers(settings)
    assert servers["notes"].args == ["-y", "server"] and servers["notes"].timeout == 5
    assert servers["notes"].env == {"LEVEL": "warn"} and servers["notes"].transport == "stdio"
    assert servers["search"].transport == "http"

    monkeypatch.setenv("OPENWEN_MCP", '{"servers": {"x": {"url": "http://h/mcp"}}}')
    assert list(mcp_servers(load_settings().settings)) == ["x"]  # env beats the file

    for bad, message in [({"servers": {"a": {}}}, "either command"),
                         ({"servers": {"a": {"command": "x", "url": "http://h"}}}, "either"),
                         ({"servers": {"a": {"command": "x", "tiemout": 3}}}, "tiemout"),
                         ({"servers": {"a b": {"command": "x"}}}, "server name"),
                         ({"server": {}}, "unknown key")]:
        with pytest.raises(ConfigError, match=message):
            mcp_servers(load_settings(mcp=bad).settings)


def test_tool_names_fit_openai_rules() -> None:
    assert tool_name("web", "search") == "web__search"
    assert tool_name("web", "get.page/v2") == "web__get_page_v2"
    assert len(tool_name("s", "x" * 100)) == 64


async def test_without_the_sdk_the_problem_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mcp", None)  # as if it were not installed
    registry = await load_tools(with_servers(demo=stdio(DEMO, "stdio")))
    assert "demo__add" not in registry and "calculator" in registry
    assert "need the mcp package" in registry.problems["mcp:demo"]
