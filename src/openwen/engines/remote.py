"""An engine that streams from any OpenAI-compatible upstream: vLLM, SGLang, llama-server,
Ollama, or a cloud endpoint.

The base URL is used as given, like the ``openai`` SDK: requests go to
``{base_url}/chat/completions`` and ``{base_url}/models``, so the URL carries whatever prefix the
upstream serves the API under
(``http://gpu-box:8000/v1``, ``http://localhost:11434/v1``, ``https://host/proxy/v1``). A trailing
slash is ignored; ``/v1`` is never added or removed.

Model choice: a configured ``model`` pins the upstream model id for every request (the engine serves
exactly that model). Without one, the request's ``model`` is passed through, and when that is also
unset the first model the upstream lists is used.

Connection failures (refused, reset before any response byte) are retried ``retries`` times with a
short backoff. Nothing is retried once the upstream answered with a status or began streaming.
The API key only ever travels in the ``Authorization`` header: it is never logged and never put in
an error message.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import time
import urllib.request
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import orjson

from openwen.engines.base import Capabilities, ModelInfo
from openwen.engines.remote_body import build_body, convert_messages
from openwen.engines.remote_errors import (
    error_for_status,
    is_model_not_found,
    model_not_found,
    parse_error_body,
    redact_url,
    scrub,
)
from openwen.engines.remote_stream import (
    ChunkReader,
    SseEvent,
    iter_sse_batches,
    merge_deltas,
)
from openwen.engines.upstream_direct import DirectResponse, DirectSender, direct_sender
from openwen.engines.upstream_http import AsyncUpstreamClient
from openwen.errors import ConfigError, OpenwenError, UpstreamError
from openwen.messages import StreamEvent
from openwen.requests import ChatRequest

if TYPE_CHECKING:
    from openwen.config import Settings

log = logging.getLogger(__name__)
R = TypeVar("R")

# Failures that happen before the upstream sent a single response byte: safe to retry.
RETRYABLE = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)
MAX_BACKOFF = 2.0
Response = httpx.Response | DirectResponse
MAX_CONNECTIONS = 4096  # per upstream
LIST_RETRY_SECONDS = 30.0


class RemoteEngine:
    """Streams chat completions from an OpenAI-compatible server over HTTP."""

    capabilities = Capabilities(tools=True, thinking=True, grammar=False, logprobs=True)

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        model: str | None = None,
        timeout: float = 600.0,
        connect_timeout: float = 10.0,
        retries: int = 2,
        name: str = "remote",
        backoff: float = 0.25,
    ):
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"the remote base URL must start with http:// or https://, got {base_url!r}"
            )
        self._base = httpx.URL(base_url)
        # Credentials in the URL become Basic auth (an API key's Bearer header wins); the URL
        # itself never carries them, so they are never logged with it.
        self._basic = (self._base.username, self._base.password) if self._base.userinfo else None
        self._base = self._base.copy_with(username=None, password=None)
        self._prefix = self._base.path.rstrip("/")
        self.base_url = str(self._base.copy_with(path=self._prefix or "/")).rstrip("/")
        self.model = model or None
        self.name = name
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self._api_key = api_key or None
        self._where = redact_url(self.base_url)
        self._upstream_models: list[ModelInfo] | None = None
        self._list_retry_at = 0.0
        self._timeouts = httpx.Timeout(timeout, connect=connect_timeout)
        self._urls: dict[str, httpx.URL] = {}
        self._direct: dict[str, DirectSender | None] = {}
        self._client = AsyncUpstreamClient(headers=self._headers(), timeout=self._timeouts,
                                          transport=_transport(self._base))
        # called with a description when the upstream cannot be reached (after the retries)
        self.on_unreachable: Callable[[str], None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> RemoteEngine:
        """An engine from ``settings.remote_*``; a clear :class:`ConfigError` without a base URL."""
        if not settings.remote_base_url:
            raise ConfigError(
                "the remote engine needs remote_base_url (OPENWEN_REMOTE_BASE_URL), "
                "e.g. http://localhost:8000/v1"
            )
        key = settings.remote_api_key
        return cls(
            settings.remote_base_url,
            api_key=key.get_secret_value() if key is not None else None,
            model=settings.remote_model,
            timeout=settings.remote_timeout,
            connect_timeout=settings.remote_connect_timeout,
            retries=settings.remote_retries,
        )

    def __repr__(self) -> str:
        return f"RemoteEngine({self._where!r}, model={self.model!r}, name={self.name!r})"

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": "openwen"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        elif self._basic is not None:
            pair = f"{self._basic[0]}:{self._basic[1]}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        return headers

    # -- models ---------------------------------------------------------------------------------

    def models(self) -> list[ModelInfo]:
        """The configured model, else the upstream's ``/models`` (fetched once, then cached).

        Without a configured model and an empty cache this makes one blocking HTTP request (call
        :meth:`list_models` from async code to fill the cache without blocking the event loop).
        An unreachable or failing upstream lists nothing, is logged, and is asked again only after
        ``LIST_RETRY_SECONDS``, so a registry that consults every engine keeps working.
        """
        if self.model:
            return [self._configured_info()]
        if self._upstream_models is None and time.monotonic() >= self._list_retry_at:
            try:
                self._upstream_models = self._fetch_models_blocking()
            except OpenwenError as exc:
                log.warning("cannot list models of %s: %s", self._where, exc)
                self._list_retry_at = time.monotonic() + LIST_RETRY_SECONDS
        return list(self._upstream_models or ())

    async def list_models(self, *, refresh: bool = False) -> list[ModelInfo]:
        """The upstream's ``/models`` listing (cached; ``refresh`` fetches it again)."""
        if self._upstream_models is None or refresh:
            response = await self._send("GET", "/models", None, model=None)
            assert isinstance(response, httpx.Response)  # no body: sent through httpx
            try:
                await response.aread()
            finally:
                await response.aclose()
            self._upstream_models = self._parse_models(response)
        return list(self._upstream_models)

    async def probe(self, timeout: float) -> list[ModelInfo]:
        """A health check: ``GET /models`` once (no retries) within ``timeout`` seconds; the
        listing, or an :class:`UpstreamError`."""
        try:
            response = await self._client.get(self._url("/models"), timeout=timeout)
        except httpx.HTTPError as exc:
            raise UpstreamError(f"cannot reach {self._where}: {_describe(exc)}") from exc
        if response.status_code >= 400:
            message, error = parse_error_body(response.content)
            raise self._plain_status_error(response, scrub(message, self._api_key), error,
                                           "/models")
        self._upstream_models = self._parse_models(response)
        return list(self._upstream_models)

    def _configured_info(self) -> ModelInfo:
        assert self.model is not None
        for info in self._upstream_models or ():
            if info.id == self.model:
                return info
        return ModelInfo(self.model, owned_by=self.name, details=self._details())

    def _details(self) -> dict[str, Any]:
        return {"engine": self.name, "upstream": self._where}

    def _fetch_models_blocking(self) -> list[ModelInfo]:
        timeout = httpx.Timeout(self._timeouts.connect, connect=self._timeouts.connect)
        try:
            response = httpx.get(self._url("/models"), headers=self._headers(), timeout=timeout)
        except httpx.HTTPError as exc:
            raise UpstreamError(f"cannot list models at {self._where}: {_describe(exc)}") from exc
        if response.status_code >= 400:
            message, error = parse_error_body(response.content)
            message = scrub(message, self._api_key)
            raise self._plain_status_error(response, message, error, "/models")
        return self._parse_models(response)

    def _parse_models(self, response: httpx.Response) -> list[ModelInfo]:
        try:
            entries = response.json()["data"]
        except (ValueError, KeyError, TypeError) as exc:
            raise UpstreamError(f"{self._where}/models did not answer a model list") from exc
        models = []
        for entry in entries:
            if not isinstance(entry, dict) or not entry.get("id"):
                continue
            length = entry.get("max_model_len") or entry.get("context_length")
            models.append(
                ModelInfo(
                    id=str(entry["id"]),
                    owned_by=str(entry.get("owned_by") or self.name),
                    context_length=int(length) if isinstance(length, int) else None,
                    details=self._details(),
                )
            )
        return models

    async def _model_for(self, request: ChatRequest) -> str | None:
        if self.model or request.model:
            return self.model or request.model
        try:
            listed = await self.list_models()
        except OpenwenError as exc:
            log.debug("no model id for %s: %s", self._where, exc)
            return None
        return listed[0].id if listed else None

    # -- generation -----------------------------------------------------------------------------

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Stream one answer. Close the iterator to stop early: the HTTP response is closed."""
        started = time.perf_counter()
        model = await self._model_for(request)
        reader = ChunkReader(started, lambda: self.count_tokens(request))
        response = await self._send("POST", "/chat/completions", build_body(request, model), model)
        if response.headers.get("content-type", "").startswith("application/json"):
            events = self._read_whole(response, reader)
        else:
            events = self._read_stream(response, reader)
        try:
            async with aclosing(events):
                async for event in events:
                    yield event
        finally:
            await response.aclose()

    async def _read_stream(
        self, response: Response, reader: ChunkReader
    ) -> AsyncGenerator[StreamEvent, None]:
        finished = False
        try:
            async with aclosing(iter_sse_batches(response.aiter_bytes())) as batches:
                async for batch in batches:
                    events: list[StreamEvent] = []
                    failure: UpstreamError | None = None
                    try:
                        finished = self._read_batch(batch, reader, events)
                    except UpstreamError as exc:
                        failure = exc  # what came before the error in this read is kept
                    for event in merge_deltas(events):
                        yield event
                    if failure is not None:
                        raise failure
                    if finished:
                        break
                    # a read that found data buffered returns without yielding: let the
                    # other streams and new requests run (one fast upstream hogged the loop
                    # and held back other streams' first tokens by seconds)
                    await asyncio.sleep(0)
        except httpx.TimeoutException as exc:
            raise UpstreamError(
                f"the upstream at {self._where} sent nothing for {self.timeout:g} s mid-answer"
            ) from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(
                f"the connection to the upstream at {self._where} broke mid-answer: "
                f"{_describe(exc)}"
            ) from exc
        if not finished and reader.finish_reason is None:
            raise UpstreamError(
                f"the upstream at {self._where} closed the stream before the answer was "
                "finished (no [DONE])"
            )
        for event in reader.finish():
            yield event

    def _read_batch(self, batch: list[SseEvent], reader: ChunkReader,
                    events: list[StreamEvent]) -> bool:
        """Append the events of one read's SSE events to ``events``; True at ``[DONE]``. A
        malformed or error event raises :class:`UpstreamError` with what came before it kept."""
        chunks: list[dict[str, Any]] = []
        failure: UpstreamError | None = None
        done = False
        for sse in batch:
            if sse.data.strip() == b"[DONE]":
                done = True
                break
            try:
                chunks.append(self._parse_chunk(sse.data, sse.event))
            except UpstreamError as exc:
                failure = exc
                break
        reader.feed_all(chunks, events)
        if failure is not None:
            raise failure
        return done

    async def _read_whole(
        self, response: Response, reader: ChunkReader
    ) -> AsyncGenerator[StreamEvent, None]:
        """An upstream that ignored ``stream: true`` and answered one JSON completion."""
        try:
            body = await response.aread()
        except httpx.HTTPError as exc:
            raise UpstreamError(f"reading the answer from {self._where}: {_describe(exc)}") from exc
        for event in reader.feed(self._parse_chunk(body, None)):
            yield event
        for event in reader.finish():
            yield event

    def _parse_chunk(self, data: bytes, event: str | None) -> dict[str, Any]:
        try:
            chunk = loads_chunk(data)
        except ValueError as exc:
            shown = scrub(data[:200].decode("utf-8", "replace"), self._api_key)
            raise UpstreamError(
                f"the upstream at {self._where} sent a malformed event: {shown}"
            ) from exc
        if not isinstance(chunk, dict):
            raise UpstreamError(f"the upstream at {self._where} sent a non-object event")
        if event == "error" and "error" not in chunk:
            chunk = {"error": chunk}
        if "error" in chunk:
            chunk["error"] = _scrub_error(chunk["error"], self._api_key)
        return chunk

    # -- HTTP -----------------------------------------------------------------------------------

    def _url(self, path: str) -> httpx.URL:
        """``{base_url}{path}``, keeping a query string of the base URL at the end (parsed once
        per path: a relayed request would otherwise pay for two URL parses)."""
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = self._base.copy_with(path=self._prefix + path)
        return url

    def _sender(self, path: str) -> DirectSender | None:
        """The aiohttp session's sender for ``path`` (see ``upstream_direct``), found once."""
        if path not in self._direct:
            self._direct[path] = direct_sender(self._client, self._url(path), self._headers(),
                                               self._timeouts)
        return self._direct[path]

    async def _send(
        self, method: str, path: str, body: dict[str, Any] | None, model: str | None
    ) -> Response:
        """Send with retries on connection failures; an error status becomes an openwen error.
        A request with a body (a chat completion) goes straight to aiohttp when it can."""
        accept = "text/event-stream" if body is not None else "application/json"
        headers = {"Accept": accept}
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = dumps_body(body)
            sender = self._sender(path)
            if sender is not None:
                url = str(self._url(path))
                response: Response = await self._send_with_retries(
                    lambda: sender.send(method, url, content, headers), path)
                return await self._checked(response, path, model)
        request = self._client.build_request(method, self._url(path), content=content,
                                             headers=headers)
        response = await self._send_with_retries(
            lambda: self._client.send(request, stream=True), path)
        return await self._checked(response, path, model)

    async def _checked(self, response: Response, path: str, model: str | None) -> Response:
        """``response`` if its status is not an error, else the error raised."""
        if response.status_code < 400:
            return response
        try:
            content = await response.aread()
        except httpx.HTTPError:
            content = b""
        finally:
            await response.aclose()
        raise await self._status_error(response, content, path, model)

    async def _send_with_retries(self, send: Callable[[], Awaitable[R]], path: str) -> R:
        where = self._where + path
        for attempt in range(self.retries + 1):
            try:
                return await send()
            except RETRYABLE as exc:
                if attempt >= self.retries:
                    tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
                    if self.on_unreachable is not None:
                        self.on_unreachable(_describe(exc))
                    raise UpstreamError(
                        f"cannot reach the upstream at {where} ({tries}): {_describe(exc)}"
                    ) from exc
                delay = min(self.backoff * 2**attempt, MAX_BACKOFF)
                log.warning(
                    "upstream %s: %s; retry %d of %d in %.2f s",
                    where,
                    _describe(exc),
                    attempt + 1,
                    self.retries,
                    delay,
                )
                await asyncio.sleep(delay)
            except httpx.TimeoutException as exc:
                raise UpstreamError(f"the upstream at {where} timed out: {_describe(exc)}") from exc
            except httpx.HTTPError as exc:
                raise UpstreamError(f"request to {where} failed: {_describe(exc)}") from exc
        raise AssertionError("unreachable")

    async def _status_error(
        self, response: Response, content: bytes, path: str, model: str | None
    ) -> OpenwenError:
        message, error = parse_error_body(content)
        message = scrub(message, self._api_key)
        if is_model_not_found(response.status_code, message, error) and path != "/models":
            return model_not_found(model, await self._available_models(), message)
        return self._plain_status_error(response, message, error, path)

    def _plain_status_error(
        self, response: Response, message: str, error: dict[str, Any], path: str
    ) -> OpenwenError:
        return error_for_status(
            response.status_code,
            message,
            error,
            where=self._where + path,
            has_key=self._api_key is not None,
            retry_after=response.headers.get("retry-after"),
        )

    async def _available_models(self) -> list[str]:
        """Model ids to list in a model-not-found error; best effort."""
        try:
            return [info.id for info in await self.list_models()]
        except OpenwenError:
            return []

    # -- the rest of the Engine protocol --------------------------------------------------------

    def count_tokens(self, request: ChatRequest) -> int:
        """A rough estimate of the prompt's tokens; the upstream's tokenizer is not consulted.

        About 4 characters a token for ASCII text and 1.5 for other scripts (CJK, Cyrillic), over
        the JSON of the messages and tools as sent. Good for budgeting, not for exact limits.
        """
        parts = [json.dumps(m, ensure_ascii=False) for m in convert_messages(request.messages)]
        parts.extend(json.dumps(tool, ensure_ascii=False) for tool in request.tools)
        text = "".join(parts)
        non_ascii = sum(1 for char in text if ord(char) > 127)
        return math.ceil((len(text) - non_ascii) / 4 + non_ascii / 1.5)

    async def aclose(self) -> None:
        """Close the HTTP client and its connections."""
        await self._client.aclose()

    async def __aenter__(self) -> RemoteEngine:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def dumps_body(body: dict[str, Any]) -> bytes:
    """A request body as compact JSON: orjson, the standard library for what orjson refuses
    (an integer wider than 64 bits in a tool's schema). A NaN or infinity becomes ``null``: an
    upstream cannot read either (strict JSON has neither)."""
    try:
        return orjson.dumps(body)
    except TypeError:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"),
                          allow_nan=False).encode()


def _transport(url: httpx.URL) -> httpx.AsyncBaseTransport:
    """aiohttp under httpx's API (as the ``openai`` SDK offers it): its C parser reads a stream
    for a fraction of h11's cost per chunk, and a read returns every chunk already received, so
    a relay that falls behind catches up per read instead of per token (``bench/gateway.py``).
    The proxy variables (``HTTPS_PROXY``, ``NO_PROXY``, ...) are read once for the upstream's
    host, not per request; connections per upstream are not capped at aiohttp's default 100 (a
    gateway may relay hundreds of streams to one engine)."""
    import aiohttp
    from httpx_aiohttp import AiohttpTransport

    def session() -> aiohttp.ClientSession:  # made on first use, inside the event loop
        connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, keepalive_timeout=30)
        # no cookie jar here either (see upstream_http)
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    proxy = urllib.request.getproxies().get(url.scheme)
    if proxy and urllib.request.proxy_bypass(url.host):
        proxy = None
    return AiohttpTransport(client=session, proxy=httpx.Proxy(proxy) if proxy else None)


def _describe(exc: BaseException) -> str:
    """``Type: message`` of an HTTP failure, naming what aiohttp saw (the transport maps a
    refused connection to httpx's ConnectTimeout; it is a ConnectError)."""
    import aiohttp

    name = type(exc).__name__
    if isinstance(exc.__cause__, aiohttp.ClientConnectorError) and not isinstance(
        exc.__cause__, aiohttp.ServerTimeoutError
    ):
        name = "ConnectError"
    text = str(exc).strip()
    return f"{name}: {text}" if text else name


def _scrub_error(error: Any, secret: str | None) -> Any:
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return {**error, "message": scrub(error["message"], secret)}
    if isinstance(error, str):
        return scrub(error, secret)
    return error


def loads_chunk(data: bytes | str) -> Any:
    """One streamed event's JSON: orjson (a relayed answer parses one per token, and the
    standard library's parser was a quarter of a gateway's CPU), the standard library for
    what orjson refuses and JSON allows (a lone surrogate escape, NaN; bytes that are not UTF-8
    are read with replacement characters, as a text decoder would)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        return json.loads(data)
