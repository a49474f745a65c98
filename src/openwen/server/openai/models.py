"""``GET /v1/models`` and ``GET /v1/models/{id}`` (ids may contain ``/`` and ``:``)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from openwen.engines.base import ModelInfo
from openwen.errors import ModelNotFoundError
from openwen.server.openai.protocol import ErrorResponse, ModelCard, ModelList

router = APIRouter(tags=["OpenAI"])

STARTED = int(time.time())


async def model_cards(request: Request) -> list[ModelCard]:
    """Chat models (local store, loaded models, remote upstream) then embedding models."""
    service = request.app.state.service
    infos: list[ModelInfo] = list(await service.registry.list_models())
    seen = {i.id for i in infos}
    for engine in service.registry.loaded():  # e.g. a model loaded from a .gguf path
        infos.extend(i for i in engine.models() if i.id not in seen)
        seen.update(i.id for i in engine.models())
    cards = [_card(i, "chat") for i in infos]
    cards += [_card(i, "embedding") for i in request.app.state.embeddings.models()
              if i.id not in seen]
    return cards


def _card(info: ModelInfo, kind: str) -> ModelCard:
    return ModelCard(id=info.id, created=STARTED, owned_by=info.owned_by,
                     context_length=info.context_length,
                     type=str(info.details.get("type", kind)),
                     available=info.details.get("available", True) is not False)


@router.get("/v1/models", summary="List models", response_model=ModelList)
async def list_models(request: Request) -> JSONResponse:
    cards = await model_cards(request)
    return JSONResponse(ModelList(data=cards).model_dump(mode="json"))


@router.get("/v1/models/{model_id:path}", summary="Retrieve a model", response_model=ModelCard,
            responses={404: {"model": ErrorResponse, "description": "unknown model"}})
async def retrieve_model(model_id: str, request: Request) -> JSONResponse:
    cards = await model_cards(request)
    for card in cards:
        if card.id == model_id:
            return JSONResponse(card.model_dump(mode="json"))
    raise ModelNotFoundError(model_id, [c.id for c in cards])
