"""Fetching URLs for a model without letting it reach the private network.

Only http and https. Every address a host name resolves to is checked (private, loopback,
link-local, multicast, reserved and other non-global addresses are refused unless an allowed
network in the settings covers them); the connection is then pinned to the checked address (the
URL's host is replaced by the IP, with the original ``Host`` header and TLS server name), so a
second DNS answer cannot swap in another address. Redirects are followed by hand and every hop is
checked the same way. The whole fetch has a deadline and the body a size cap; proxies from the
environment are ignored (a proxy would undo the pinning).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from openwen.config import Settings
from openwen.tools.base import ToolError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
USER_AGENT = "openwen-fetch/0.1 (+https://github.com/openwen)"


class AddressPolicy:
    """Which addresses a fetch may connect to: global unicast ones, plus allowed networks."""

    def __init__(self, allow_networks: Iterable[str] = ()):
        try:
            self.allow = [ipaddress.ip_network(n.strip(), strict=False)
                          for n in allow_networks if n.strip()]
        except ValueError as exc:
            raise ToolError(f"fetch_allow_networks has an invalid network: {exc}") from None

    @classmethod
    def from_settings(cls, settings: Settings) -> AddressPolicy:
        return cls(settings.fetch_allow_networks.split(","))

    def allows(self, address: IPAddress) -> bool:
        inner = _unwrap(address)
        if any(a in net for net in self.allow for a in {address, inner}):
            return True
        return inner.is_global and not inner.is_multicast and not address.is_multicast


def _unwrap(address: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped, 6to4 or NAT64 IPv6 address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return address.ipv4_mapped
        if address.sixtofour:
            return address.sixtofour
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


@dataclass(frozen=True)
class Target:
    url: str
    host: str
    port: int
    address: IPAddress


async def resolve(url: str, policy: AddressPolicy, *, trusted_hosts: Iterable[str] = ()
                  ) -> Target:
    """Check a URL and every address its host resolves to; the first address is the pin."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ToolError(f"only http and https URLs can be fetched, not {parts.scheme or 'none'!r}")
    host = parts.hostname
    if not host:
        raise ToolError(f"the URL {url!r} has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ToolError(f"the URL {url!r} has an invalid port") from None
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ToolError(f"cannot resolve host {host!r}: {exc}") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0])
                                   for info in infos))
    if not addresses:
        raise ToolError(f"host {host!r} has no address")
    if host not in set(trusted_hosts):
        refused = [a for a in addresses if not policy.allows(a)]
        if refused:
            raise ToolError(f"refusing to fetch {host}: it resolves to {refused[0]}, a private, "
                            "loopback, link-local or otherwise non-public address")
    return Target(url, host, port, addresses[0])


@dataclass(frozen=True)
class Fetched:
    url: str
    status: int
    content_type: str
    charset: str | None
    body: bytes
    truncated: bool

    def text(self) -> str:
        return self.body.decode(self.charset or "utf-8", errors="replace")


class GuardedFetcher:
    def __init__(self, policy: AddressPolicy, *, timeout: float = 20.0,
                 max_bytes: int = 2_000_000, max_redirects: int = 5,
                 trusted_hosts: Iterable[str] = ()):
        self.policy = policy
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self.trusted_hosts = tuple(trusted_hosts)

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: object) -> GuardedFetcher:
        return cls(AddressPolicy.from_settings(settings), timeout=settings.fetch_timeout,
                   max_bytes=settings.fetch_max_bytes, **kwargs)  # type: ignore[arg-type]

    async def get(self, url: str, *, headers: Mapping[str, str] | None = None) -> Fetched:
        try:
            async with asyncio.timeout(self.timeout):
                return await self._get(url, dict(headers or {}))
        except TimeoutError:
            raise ToolError(f"fetching {url} took longer than {self.timeout:g} seconds") from None
        except httpx.HTTPError as exc:
            raise ToolError(f"fetching {url} failed: {type(exc).__name__}: {exc}") from None

    async def _get(self, url: str, headers: dict[str, str]) -> Fetched:
        timeout = httpx.Timeout(self.timeout)
        async with httpx.AsyncClient(trust_env=False, follow_redirects=False,
                                     timeout=timeout) as client:
            for _ in range(self.max_redirects + 1):
                target = await resolve(url, self.policy, trusted_hosts=self.trusted_hosts)
                async with _send(client, target, headers) as response:
                    location = response.headers.get("location")
                    if response.is_redirect and location:
                        url = urljoin(url, location)
                        continue
                    return await self._read(url, response)
        raise ToolError(f"too many redirects (more than {self.max_redirects})")

    async def _read(self, url: str, response: httpx.Response) -> Fetched:
        body = bytearray()
        truncated = False
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > self.max_bytes:
                del body[self.max_bytes:]
                truncated = True
                break
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        return Fetched(url, response.status_code, content_type, response.charset_encoding,
                       bytes(body), truncated)


def _send(client: httpx.AsyncClient, target: Target, headers: dict[str, str]
          ) -> AbstractAsyncContextManager[httpx.Response]:
    """A streamed GET to the pinned address, carrying the real host name."""
    url = httpx.URL(target.url)
    host_header = url.netloc.decode("ascii").rsplit("@", 1)[-1]
    pinned = url.copy_with(host=str(target.address))
    sni = url.raw_host.decode("ascii")
    extensions = {"sni_hostname": sni} if url.scheme == "https" else {}
    request_headers = {"User-Agent": USER_AGENT, **headers, "Host": host_header}
    return client.stream("GET", pinned, headers=request_headers, extensions=extensions)
