"""``POST /v1/embeddings``: vectors for one text or a list of texts, as floats or base64."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from openwen.errors import InvalidRequestError
from openwen.knowledge.embeddings import EmbeddingService
from openwen.server.generating import until_disconnect
from openwen.server.openai.chat import ERRORS
from openwen.server.openai.common import json_body_doc, read_request
from openwen.server.openai.protocol import EmbeddingRequest, EmbeddingResponse

router = APIRouter(tags=["OpenAI"])


@router.post(
    "/v1/embeddings",
    summary="Create embeddings",
    openapi_extra=json_body_doc(EmbeddingRequest),
    responses={200: {"model": EmbeddingResponse, "description": "one vector per input"},
               **ERRORS},
)
async def create_embeddings(request: Request) -> Response:
    body = await read_request(request, EmbeddingRequest)
    service: EmbeddingService = request.app.state.embeddings
    name, result = await until_disconnect(request, service.embed(body.model, body.texts()))
    if body.dimensions is not None and body.dimensions != result.dimensions:
        raise InvalidRequestError(
            f"model '{name}' makes {result.dimensions}-dimensional vectors; it cannot shorten "
            "them (leave 'dimensions' out)", param="dimensions")
    request.app.state.metrics.prompt_tokens.labels(name).inc(result.prompt_tokens)
    as_base64 = body.encoding_format == "base64"
    data: list[dict[str, Any]] = [
        {"object": "embedding", "index": i,
         "embedding": _base64(vector) if as_base64 else vector.tolist()}
        for i, vector in enumerate(result.vectors)
    ]
    return JSONResponse({
        "object": "list", "data": data, "model": name,
        "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
    })


def _base64(vector: np.ndarray) -> str:
    """Little-endian float32 bytes, base64-encoded (what OpenAI's SDKs decode)."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
