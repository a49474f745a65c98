"""A relayed chat completion sent on the remote engine's aiohttp session, without httpx's layers.

The remote engine's httpx client runs over aiohttp (``httpx-aiohttp``). For the one request a
gateway makes per answer, httpx's own layers (building and merging the request, its headers and
URL, auth and redirect handling, the response and its byte-stream wrappers) were ~10% of a relayed
request's CPU (py-spy, ``bench/gateway.py``). :class:`DirectSender` sends that request on the very
session the transport uses, with the transport's own timeouts, proxy settings and exception mapping
(aiohttp's errors become the same httpx exceptions, so retries and error messages do not change),
and hands back a :class:`DirectResponse`, which has the part of :class:`httpx.Response` the
engine reads. It is used only where httpx itself would pick the aiohttp transport (a proxy that
httpx mounted from the environment keeps the httpx path).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import map_aiohttp_exceptions

CHUNK_SIZE = 16 * 1024  # as the transport reads


class DirectResponse:
    """An upstream's response: status, headers (case-insensitive), the body streamed or whole."""

    def __init__(self, response: aiohttp.ClientResponse):
        self._response = response
        self.status_code = response.status
        self.headers: Mapping[str, str] = response.headers

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        with map_aiohttp_exceptions():
            async for data in self._response.content.iter_chunked(CHUNK_SIZE):
                yield data

    async def aread(self) -> bytes:
        with map_aiohttp_exceptions():
            return await self._response.read()

    async def aclose(self) -> None:
        with map_aiohttp_exceptions():
            await self._response.__aexit__(None, None, None)


class DirectSender:
    """Sends on ``transport``'s aiohttp session with ``headers`` (the engine's ``User-Agent``
    and any ``Authorization``) and ``timeout`` (the httpx client's, mapped as the transport
    maps it); aiohttp adds ``Host`` and an ``Accept-Encoding`` it can decode."""

    def __init__(self, transport: AiohttpTransport, headers: Mapping[str, str],
                 timeout: httpx.Timeout):
        self._transport = transport
        self._headers = dict(headers)
        self._timeout = aiohttp.ClientTimeout(sock_connect=timeout.connect, sock_read=timeout.read,
                                              connect=timeout.pool)
        proxy = transport.proxy
        self._proxy: dict[str, Any] = {
            "proxy": str(proxy.url) if proxy else None,
            "proxy_auth": aiohttp.BasicAuth(*proxy.auth) if proxy and proxy.auth else None,
            "proxy_headers": proxy.headers if proxy else None,
        }

    def _session(self) -> aiohttp.ClientSession:
        transport = self._transport
        if not isinstance(transport.client, aiohttp.ClientSession):
            transport.client = transport.get_client()
        return transport.client

    async def send(self, method: str, url: str, content: bytes | None,
                   headers: Mapping[str, str]) -> DirectResponse:
        """The response once its head arrived; httpx's exceptions for aiohttp's failures."""
        with map_aiohttp_exceptions():
            response = await self._session().request(
                method, url, headers={**self._headers, **headers}, data=content or None,
                allow_redirects=False, timeout=self._timeout, **self._proxy,
            ).__aenter__()
        return DirectResponse(response)


def direct_sender(client: httpx.AsyncClient, url: httpx.URL, headers: Mapping[str, str],
                  timeout: httpx.Timeout) -> DirectSender | None:
    """A sender for requests to ``url`` when httpx would send them on an aiohttp transport."""
    transport = client._transport_for_url(url)
    if not isinstance(transport, AiohttpTransport):
        return None
    return DirectSender(transport, headers, timeout)
