"""Reading an OpenAI request body (and documenting it in the OpenAPI schema).

The generating-route skeleton every dialect shares lives in :mod:`openwen.server.generating`.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel

from openwen.server.openai.base import parse_request

M = TypeVar("M", bound=BaseModel)


def json_body_doc(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON body the route parses itself."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}


async def read_request(request: Request, model: type[M]) -> M:
    """The body parsed as ``model``, whatever the Content-Type (``curl -d`` sends a form type)."""
    return parse_request(model, await request.body())
