"""Several OpenAI-compatible upstreams (``[[engines]]`` in the config), with health checks.

Each :class:`Upstream` wraps a :class:`~openwen.engines.remote.RemoteEngine` and knows which
model ids it serves: the ``models`` of its config, else what its ``/models`` listed at the last
successful check. :class:`Upstreams` checks every upstream every ``upstream_check_interval``
seconds (a short ``GET /models``); an upstream that fails a check, or whose connection fails
during a request, is marked unavailable: its models stay listed (``available: false``) and a
request for one gets a 503 with ``Retry-After`` until a check succeeds again.

The legacy single upstream (``remote_base_url``, ``remote_model``...) is the first upstream,
named ``remote``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from openwen.config import Settings, UpstreamConfig
from openwen.engines.base import ModelInfo
from openwen.engines.remote import RemoteEngine
from openwen.engines.remote_errors import redact_url
from openwen.errors import OpenwenError, OverloadedError

log = logging.getLogger(__name__)

CHECK_TIMEOUT = 3.0


class UpstreamUnavailableError(OverloadedError):
    """The upstream serving the model failed its last health check."""

    code = "upstream_unavailable"


def upstream_configs(settings: Settings) -> list[UpstreamConfig]:
    configs = []
    if settings.remote_base_url:
        configs.append(UpstreamConfig(
            name="remote", base_url=settings.remote_base_url, api_key=settings.remote_api_key,
            models=(settings.remote_model,) if settings.remote_model else (),
            timeout=settings.remote_timeout, connect_timeout=settings.remote_connect_timeout,
            retries=settings.remote_retries))
    configs.extend(settings.engines)
    return configs


class Upstream:
    def __init__(self, config: UpstreamConfig, retry_after: int):
        self.config = config
        self.name = config.name
        key = config.api_key.get_secret_value() if config.api_key is not None else None
        self.engine = RemoteEngine(
            config.base_url, api_key=key,
            model=config.models[0] if len(config.models) == 1 else None,
            timeout=config.timeout, connect_timeout=config.connect_timeout,
            retries=config.retries, name=config.name)
        self.engine.on_unreachable = self.mark_down
        self.available = True
        self.error: str | None = None
        self.retry_after = retry_after
        self.checked_at = 0.0
        self._listed: list[ModelInfo] = []

    def model_ids(self) -> list[str]:
        if self.config.models:
            return list(self.config.models)
        return [m.id for m in self._listed]

    def infos(self) -> list[ModelInfo]:
        listed = {m.id: m for m in self._listed}
        details = {"engine": self.name, "upstream": redact_url(self.engine.base_url),
                   "available": self.available}
        return [ModelInfo(id=i, owned_by=self.name,
                          context_length=listed[i].context_length if i in listed else None,
                          details=details)
                for i in self.model_ids()]

    def mark_down(self, error: str) -> None:
        if self.available:
            log.warning("upstream %s is unavailable: %s", self.name, error)
        self.available, self.error = False, error

    async def check(self) -> bool:
        """One health check: ``GET /models`` within a few seconds."""
        self.checked_at = time.monotonic()
        try:
            self._listed = await self.engine.probe(min(CHECK_TIMEOUT, self.config.timeout))
        except OpenwenError as exc:
            self.mark_down(exc.message)
            return False
        if not self.available:
            log.info("upstream %s is available again", self.name)
        self.available, self.error = True, None
        return True

    def unavailable(self, model: str) -> UpstreamUnavailableError:
        return UpstreamUnavailableError(
            f"model {model!r} is unavailable: its upstream {self.name!r} cannot be reached "
            f"({self.error}); retry shortly", retry_after=self.retry_after)


class Upstreams:
    """Every configured upstream, and the task checking their health."""

    def __init__(self, settings: Settings):
        self.interval = settings.upstream_check_interval
        retry = max(1, round(self.interval))
        self.all = [Upstream(c, retry) for c in upstream_configs(settings)]
        self._task: asyncio.Task[None] | None = None
        self._first: asyncio.Task[None] | None = None

    def __bool__(self) -> bool:
        return bool(self.all)

    async def ready(self) -> None:
        """Start the health checks (once) and wait for the first round."""
        if not self.all:
            return
        if self._first is None:
            self._first = asyncio.create_task(self._check_all())
            self._task = asyncio.create_task(self._run(), name="openwen-upstream-health")
        await asyncio.shield(self._first)

    async def _check_all(self) -> None:
        await asyncio.gather(*(u.check() for u in self.all))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            with contextlib.suppress(Exception):
                await self._check_all()

    async def list_models(self) -> list[ModelInfo]:
        await self.ready()
        seen: set[str] = set()
        infos = []
        for upstream in self.all:
            for info in upstream.infos():
                if info.id not in seen:
                    seen.add(info.id)
                    infos.append(info)
        return infos

    async def find(self, model: str) -> Upstream | None:
        """The upstream serving ``model``: the first available one that lists it, else the
        first unavailable one that does (None: no upstream serves it)."""
        await self.ready()
        serving = [u for u in self.all if model in u.model_ids()]
        for upstream in serving:
            if upstream.available:
                return upstream
        return serving[0] if serving else None

    async def aclose(self) -> None:
        for task in (self._task, self._first):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for upstream in self.all:
            await upstream.engine.aclose()
