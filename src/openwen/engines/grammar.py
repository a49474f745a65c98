"""Grammar-constrained decoding for llama.cpp: JSON mode and JSON Schema (``response_format``)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from openwen.engines.base import ChatRequest
from openwen.errors import InvalidRequestError


def grammar_for(request: ChatRequest) -> Any | None:
    """A ``LlamaGrammar`` enforcing the request's response format, or ``None``."""
    fmt = request.response_format or {}
    kind = fmt.get("type", "text")
    if kind == "text":
        return None
    if kind == "json_object":
        return _json_object_grammar()
    if kind == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise InvalidRequestError(
                "response_format.json_schema.schema must be a JSON Schema object",
                param="response_format",
            )
        return _schema_grammar(json.dumps(schema, sort_keys=True))
    raise InvalidRequestError(f"unsupported response_format type '{kind}'", param="response_format")


@lru_cache(maxsize=1)
def _json_object_grammar() -> Any:
    from llama_cpp import LlamaGrammar

    return _build(lambda: LlamaGrammar.from_json_schema(json.dumps({"type": "object"}),
                                                        verbose=False))


@lru_cache(maxsize=64)
def _schema_grammar(schema_json: str) -> Any:
    from llama_cpp import LlamaGrammar

    return _build(lambda: LlamaGrammar.from_json_schema(schema_json, verbose=False))


def _build(make: Any) -> Any:
    try:
        return make()
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise InvalidRequestError(
            f"response_format: cannot turn this JSON schema into a grammar: {exc}",
            param="response_format",
        ) from exc
