"""Prometheus metrics at ``/metrics``: requests, latency, tokens, queue depth, time to first token.

Each app has its own registry (several apps can live in one process, as in tests). Series:

- ``openwen_requests_total{dialect,route,method,status}`` and
  ``openwen_request_duration_seconds{route}`` (a streamed answer counts until its last byte);
  ``route`` is the route template, never the raw path, so label values stay few;
- ``openwen_prompt_tokens_total{model,dialect}``, ``openwen_completion_tokens_total{model,
  dialect}``;
- ``openwen_time_to_first_token_seconds{model,dialect}``: request received to first generated
  event;
- ``openwen_queue_depth{model}``: requests waiting or running per loaded embedded model.

``dialect`` is the API a request speaks (:func:`dialect_of`): ``openai`` (Chat Completions,
completions, embeddings, models), ``responses``, ``anthropic``, ``ollama``, or ``other`` (the
web app, health, metrics).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openwen.messages import Usage
from openwen.server import ollama

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
MAX_CACHED_SERIES = 4096
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)


OLLAMA_PATHS = frozenset(ollama.PATHS)


def dialect_of(path: str) -> str:
    """The API dialect a request path belongs to (a label value; few and fixed)."""
    if path.startswith("/v1/responses"):
        return "responses"
    if path.startswith("/v1/messages"):
        return "anthropic"
    if path in OLLAMA_PATHS:
        return "ollama"
    if path.startswith("/v1/"):
        return "openai"
    return "other"


class _QueueDepth(Collector):
    def __init__(self, depths: Callable[[], dict[str, int]]):
        self._depths = depths

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily("openwen_queue_depth",
                                  "Requests waiting or running per loaded model", labels=["model"])
        for model, depth in sorted(self._depths().items()):
            gauge.add_metric([model], depth)
        yield gauge


class Metrics:
    def __init__(self, queue_depths: Callable[[], dict[str, int]] = dict):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("openwen_requests", "HTTP requests",
                                ["dialect", "route", "method", "status"], registry=r)
        self.latency = Histogram("openwen_request_duration_seconds",
                                 "HTTP request latency (streams: until the last byte)", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.prompt_tokens = Counter("openwen_prompt_tokens", "Prompt tokens processed",
                                     ["model", "dialect"], registry=r)
        self.completion_tokens = Counter("openwen_completion_tokens", "Tokens generated",
                                         ["model", "dialect"], registry=r)
        self.ttft = Histogram("openwen_time_to_first_token_seconds",
                              "Request received to first generated event", ["model", "dialect"],
                              buckets=TTFT_BUCKETS, registry=r)
        r.register(_QueueDepth(queue_depths))

    def record_usage(self, model: str, usage: Usage, dialect: str) -> None:
        self.prompt_tokens.labels(model, dialect).inc(usage.prompt_tokens)
        self.completion_tokens.labels(model, dialect).inc(usage.completion_tokens)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts every HTTP request by route template and status, and times it."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics):
        self.app = app
        self.metrics = metrics
        self._children: dict[tuple[str, str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            count, latency = self._series(route, scope.get("path", ""), scope["method"], status)
            count.inc()
            latency.observe(time.perf_counter() - start)

    def _series(self, route: str, path: str, method: str, status: int) -> tuple[Any, Any]:
        """The request counter and latency histogram of these labels (looked up once: a
        labelled series is a lock and a dict per call; label values are route templates,
        methods and statuses, so few)."""
        dialect = dialect_of(path)
        key = (dialect, route, method, status)
        series = self._children.get(key)
        if series is None:
            series = (self.metrics.requests.labels(dialect, route, method, str(status)),
                      self.metrics.latency.labels(route))
            if len(self._children) < MAX_CACHED_SERIES:
                self._children[key] = series
        return series
