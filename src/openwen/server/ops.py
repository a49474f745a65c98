"""Operations endpoints: ``/health`` (liveness and loaded models) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from openwen.chat.service import ChatService
from openwen.server.metrics import CONTENT_TYPE

router = APIRouter(tags=["operations"])


def queue_depths(service: ChatService) -> dict[str, int]:
    """Requests waiting or running per loaded embedded model."""
    depths = {}
    for engine in service.registry.loaded():
        worker = getattr(engine, "worker", None)
        if worker is not None:
            depths[engine.name] = worker.queue_depth
    return depths


@router.get("/health", summary="Liveness, loaded models and their queues")
async def health(request: Request) -> JSONResponse:
    service: ChatService = request.app.state.service
    depths = queue_depths(service)
    loaded: list[dict[str, Any]] = [
        {"id": engine.name, "queue_depth": depths.get(engine.name)}
        for engine in service.registry.loaded()
    ]
    draining = request.app.state.shutdown.draining
    return JSONResponse({"status": "shutting_down" if draining else "ok", "models": loaded},
                        status_code=503 if draining else 200)


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)
