"""``GET /v1/models`` and ``GET /v1/models/{id}`` (ids may contain ``/`` and ``:``)."""

from __future__ import annotations

import time
from typing import NamedTuple

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from openwen.engines.base import ModelInfo
from openwen.errors import ModelNotFoundError
from openwen.server.openai.protocol import ErrorResponse, ModelCard, ModelList

router = APIRouter(tags=["OpenAI"])

STARTED = int(time.time())


class CardFields(NamedTuple):
    """What a model card shows (``created`` is the server's start for every card)."""

    id: str
    owned_by: str
    context_length: int | None
    type: str
    available: bool


async def card_fields(request: Request) -> tuple[CardFields, ...]:
    """Chat models (local store, loaded models, remote upstream) then embedding models."""
    service = request.app.state.service
    infos: list[ModelInfo] = list(await service.registry.list_models())
    seen = {i.id for i in infos}
    for engine in service.registry.loaded():  # e.g. a model loaded from a .gguf path
        infos.extend(i for i in engine.models() if i.id not in seen)
        seen.update(i.id for i in engine.models())
    fields = [_fields(i, "chat") for i in infos]
    fields += [_fields(i, "embedding") for i in request.app.state.embeddings.models()
               if i.id not in seen]
    return tuple(fields)


async def model_cards(request: Request) -> list[ModelCard]:
    return [_card(f) for f in await card_fields(request)]


def _fields(info: ModelInfo, kind: str) -> CardFields:
    return CardFields(info.id, info.owned_by, info.context_length,
                      str(info.details.get("type", kind)),
                      info.details.get("available", True) is not False)


def _card(fields: CardFields) -> ModelCard:
    return ModelCard(created=STARTED, **fields._asdict())


class EncodedList:
    """The last ``/v1/models`` body, encoded once and sent again while the cards it shows stay
    the same (clients poll this list; validating and encoding it per request cost more than
    finding what it lists)."""

    def __init__(self) -> None:
        self._last: tuple[tuple[CardFields, ...], bytes] | None = None

    def body(self, fields: tuple[CardFields, ...]) -> bytes:
        last = self._last
        if last is not None and last[0] == fields:
            return last[1]
        body = ModelList(data=[_card(f) for f in fields]).model_dump_json().encode()
        self._last = (fields, body)
        return body


@router.get("/v1/models", summary="List models", response_model=ModelList)
async def list_models(request: Request) -> Response:
    encoded: EncodedList = request.app.state.encoded_models
    return Response(encoded.body(await card_fields(request)), media_type="application/json")


@router.get("/v1/models/{model_id:path}", summary="Retrieve a model", response_model=ModelCard,
            responses={404: {"model": ErrorResponse, "description": "unknown model"}})
async def retrieve_model(model_id: str, request: Request) -> JSONResponse:
    cards = await model_cards(request)
    for card in cards:
        if card.id == model_id:
            return JSONResponse(card.model_dump(mode="json"))
    raise ModelNotFoundError(model_id, [c.id for c in cards])
