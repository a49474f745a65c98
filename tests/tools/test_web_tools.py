"""fetch_url and web_search: no private addresses (also after redirects and DNS tricks),
size and time limits, readable text; SearXNG through a stand-in on 127.0.0.1."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from tools_kit import LocalServer, slow_reply

from openwen.config import Settings, load_settings
from openwen.tools.builtin.web import make_fetch_tool, make_search_tool
from openwen.tools.context import ToolContext
from openwen.tools.htmltext import html_to_text
from openwen.tools.netguard import AddressPolicy
from openwen.tools.registry import load_tools

PAGE = b"""<html><head><title>Test  page</title><style>p{color:red}</style></head>
<body><script>alert('no')</script><h1>Heading</h1><p>First   paragraph with a
<a href="/next">link</a>.</p><ul><li>one</li><li>two</li></ul></body></html>"""


def fetch_settings(**overrides: Any) -> Settings:
    return load_settings(**overrides).settings


def fetch(settings: Settings, url: str, **kw: Any) -> Any:
    return make_fetch_tool(ToolContext(settings)).call({"url": url, **kw})


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "255.255.255.255", "224.0.0.1", "::1", "fe80::1", "fc00::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "2002:7f00:1::", "64:ff9b::a00:1", "192.0.2.1",
])
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not AddressPolicy().allows(ipaddress.ip_address(address))


def test_public_addresses_and_allowed_networks() -> None:
    for public in ("8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"):
        assert AddressPolicy().allows(ipaddress.ip_address(public))
    policy = AddressPolicy(["127.0.0.1/32", " "])
    assert policy.allows(ipaddress.ip_address("127.0.0.1"))
    assert policy.allows(ipaddress.ip_address("::ffff:127.0.0.1"))
    assert not policy.allows(ipaddress.ip_address("127.0.0.2"))


async def test_loopback_is_refused_unless_allowed(local_server: LocalServer) -> None:
    local_server.routes["/"] = (200, {"Content-Type": "text/html; charset=utf-8"}, PAGE)
    refused = await fetch(fetch_settings(), local_server.url + "/")
    assert refused.error and "refusing to fetch 127.0.0.1" in refused.text
    assert local_server.requests == []  # no connection was made

    allowed = fetch_settings(fetch_allow_networks="127.0.0.1/32")
    out = await fetch(allowed, local_server.url + "/")
    assert out.error is None
    assert "Status: 200" in out.text and "Title: Test page" in out.text
    assert "# Heading" in out.text and "First paragraph with a link [1]." in out.text
    assert "- one\n- two" in out.text and f"[1] {local_server.url}/next" in out.text
    assert "alert" not in out.text and "color" not in out.text


@pytest.mark.parametrize("scheme_url", ["file:///etc/passwd", "ftp://example.com/",
                                        "gopher://127.0.0.1/", "http:///nohost"])
async def test_only_http_and_https(scheme_url: str) -> None:
    out = await fetch(fetch_settings(), scheme_url)
    assert out.error and ("only http and https" in out.text or "no host" in out.text)


async def test_every_redirect_is_checked_again(local_server: LocalServer) -> None:
    port = local_server.port
    local_server.routes["/hop"] = (302, {"Location": "/final"}, b"")
    local_server.routes["/final"] = (200, {"Content-Type": "text/plain"}, b"arrived")
    local_server.routes["/escape"] = (302, {"Location": f"http://127.0.0.2:{port}/final"}, b"")
    local_server.routes["/loop"] = (302, {"Location": "/loop"}, b"")
    settings = fetch_settings(fetch_allow_networks="127.0.0.1/32")

    followed = await fetch(settings, local_server.url + "/hop")
    assert followed.error is None and "arrived" in followed.text
    assert f"URL: {local_server.url}/final" in followed.text
    escaped = await fetch(settings, local_server.url + "/escape")
    assert escaped.error and "refusing to fetch 127.0.0.2" in escaped.text
    looped = await fetch(settings, local_server.url + "/loop")
    assert looped.error and "too many redirects" in looped.text


async def test_connection_is_pinned_to_the_checked_address(
        local_server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A DNS answer that changes after the check (rebinding) is never consulted again."""
    local_server.routes["/"] = (200, {"Content-Type": "text/plain"}, b"pinned")
    answers = {"rebind.test": [["127.0.0.1"], ["10.0.0.1"]],
               "mixed.test": [["93.184.216.34", "10.0.0.1"]]}
    lookups: list[str] = []
    loop = asyncio.get_running_loop()

    async def fake_getaddrinfo(host: str, port: int, **_: Any) -> list[Any]:
        lookups.append(host)
        addresses = answers[host].pop(0)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    monkeypatch.setattr(loop, "getaddrinfo", fake_getaddrinfo)
    settings = fetch_settings(fetch_allow_networks="127.0.0.1/32")
    out = await fetch(settings, f"http://rebind.test:{local_server.port}/")
    assert out.error is None and "pinned" in out.text
    assert lookups == ["rebind.test"]  # resolved once; the second (private) answer never used
    assert local_server.requests[0][1]["Host"] == f"rebind.test:{local_server.port}"

    mixed = await fetch(settings, f"http://mixed.test:{local_server.port}/")
    assert mixed.error and "resolves to 10.0.0.1" in mixed.text  # one bad address is enough
    assert len(local_server.requests) == 1


async def test_size_and_time_limits(local_server: LocalServer) -> None:
    local_server.routes["/big"] = (200, {"Content-Type": "text/plain"}, b"a" * 50_000)
    local_server.routes["/slow"] = slow_reply(3, (200, {}, b"late"))
    local_server.routes["/bin"] = (200, {"Content-Type": "image/png"}, b"\x89PNG" + b"\0" * 99)
    settings = fetch_settings(fetch_allow_networks="127.0.0.1/32", fetch_max_bytes=1024,
                              fetch_timeout=0.5)
    big = await fetch(settings, local_server.url + "/big", max_chars=20000)
    assert "only the first 1024 bytes" in big.text and big.text.count("a") <= 1024 + 10
    slow = await fetch(settings, local_server.url + "/slow")
    assert slow.error and "took longer than 0.5 seconds" in slow.text
    binary = await fetch(settings, local_server.url + "/bin")
    assert "binary content of type image/png, 103 bytes" in binary.text


def test_html_to_text_keeps_pre_and_drops_noise() -> None:
    text = html_to_text("<p>a</p><pre>x  =  1\n  y</pre><noscript>no</noscript><p>b&amp;c</p>")
    assert "x  =  1\n  y" in text and "no" not in text.split() and "b&c" in text


def searxng_reply(handler: Any) -> tuple[int, dict[str, str], bytes]:
    query = parse_qs(urlsplit(handler.path).query)
    results = [{"title": f"Result {i} for {query['q'][0]}", "url": f"https://example.org/{i}",
                "content": f"snippet {i}"} for i in range(1, 8)]
    body = json.dumps({"query": query["q"][0], "results": results}).encode()
    return 200, {"Content-Type": "application/json"}, body


async def test_web_search_through_a_searxng_stand_in(local_server: LocalServer) -> None:
    local_server.routes["/search"] = searxng_reply
    settings = fetch_settings(searxng_url=local_server.url + "/")
    search = make_search_tool(ToolContext(settings))
    assert search is not None
    out = await search.call({"query": "open weights", "max_results": 3})
    assert out.error is None
    assert out.text.startswith("1. Result 1 for open weights\n   https://example.org/1\n")
    assert "3. Result 3" in out.text and "4. Result" not in out.text
    path, _headers = local_server.requests[0]
    assert parse_qs(urlsplit(path).query) == {"q": ["open weights"], "format": ["json"]}
    # the operator's instance is reachable; the model's own fetches to it are not
    refused = await fetch(settings, local_server.url + "/search?q=x&format=json")
    assert refused.error and "refusing" in refused.text


async def test_web_search_errors_are_clear(local_server: LocalServer) -> None:
    local_server.routes["/search"] = (200, {"Content-Type": "text/html"}, b"<html>hi</html>")
    settings = fetch_settings(searxng_url=local_server.url)
    search = make_search_tool(ToolContext(settings))
    assert search is not None
    out = await search.call({"query": "x"})
    assert out.error and "did not return JSON" in out.text


async def test_web_search_only_when_configured(settings: Settings) -> None:
    registry = await load_tools(settings, mcp=False)
    assert "web_search" not in registry and "fetch_url" in registry
    assert registry.get("fetch_url").side_effects  # type: ignore[union-attr]
