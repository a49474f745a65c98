"""Grammar-constrained decoding for llama.cpp: JSON mode and JSON Schema (``response_format``)."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from openwen.errors import InvalidRequestError
from openwen.requests import ChatRequest


def grammar_for(request: ChatRequest) -> Any | None:
    """A ``LlamaGrammar`` for the request, or ``None``.

    ``tool_choice`` ``required`` or a named function forces well-formed tool calls matching the
    tools' schemas (Qwen's ``<tool_call>`` JSON form, which every format's parser reads); otherwise
    ``response_format`` ``json_object`` / ``json_schema`` constrains the answer text.
    """
    tools = forced_tools(request)
    if tools:
        # a named tool is one call (as OpenAI); "required" may make up to MAX_PARALLEL_CALLS
        parallel = request.parallel_tool_calls and request.tool_choice == "required"
        return _tool_grammar(json.dumps(tools, sort_keys=True), parallel)
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


MAX_PARALLEL_CALLS = 4


def forced_tools(request: ChatRequest) -> list[dict[str, Any]]:
    """The tool definitions a call must be chosen from, when the request forces a call."""
    choice = request.tool_choice
    if not request.tools or choice in (None, "auto", "none"):
        return []
    functions = [t.get("function", t) for t in request.tools]
    if choice == "required":
        return functions
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") or choice.get("name")
        named = [f for f in functions if f.get("name") == name]
        if not named:
            raise InvalidRequestError(
                f"tool_choice names '{name}', which is not in tools", param="tool_choice"
            )
        return named
    raise InvalidRequestError(f"unsupported tool_choice {choice!r}", param="tool_choice")


def _call_schema(function: dict[str, Any]) -> dict[str, Any]:
    params = function.get("parameters") or {"type": "object", "properties": {}}
    return {
        "type": "object",
        "properties": {"name": {"const": function["name"]}, "arguments": params},
        "required": ["name", "arguments"],
    }


@lru_cache(maxsize=64)
def _tool_grammar(functions_json: str, parallel: bool) -> Any:
    from llama_cpp import LlamaGrammar
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    functions = json.loads(functions_json)
    schemas = [_call_schema(f) for f in functions]
    schema = schemas[0] if len(schemas) == 1 else {"anyOf": schemas}

    def make() -> Any:
        body = re.sub(
            r"^root ::=", "tool-call-json ::=", json_schema_to_gbnf(json.dumps(schema)), flags=re.M
        )
        call = '"<tool_call>\\n" tool-call-json "\\n</tool_call>"'
        more = f' ("\\n" {call})?' * (MAX_PARALLEL_CALLS - 1) if parallel else ""
        root = f"root ::= {call}{more}"
        return LlamaGrammar.from_string(f"{root}\n{body}", verbose=False)

    return _build(make, "tools")


@lru_cache(maxsize=1)
def _json_object_grammar() -> Any:
    from llama_cpp import LlamaGrammar

    return _build(
        lambda: LlamaGrammar.from_json_schema(json.dumps({"type": "object"}), verbose=False)
    )


@lru_cache(maxsize=64)
def _schema_grammar(schema_json: str) -> Any:
    from llama_cpp import LlamaGrammar

    return _build(lambda: LlamaGrammar.from_json_schema(schema_json, verbose=False))


def _build(make: Any, param: str = "response_format") -> Any:
    try:
        return make()
    except (
        ValueError,
        KeyError,
        TypeError,
        RecursionError,
        AssertionError,
        NotImplementedError,
    ) as exc:  # llama.cpp's converter asserts on unknown types
        raise InvalidRequestError(
            f"{param}: cannot turn this JSON schema into a grammar: {exc}", param=param
        ) from exc
