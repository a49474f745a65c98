"""Grammar-constrained decoding for llama.cpp: JSON mode and JSON Schema (``response_format``),
and forced tool calls (``tool_choice`` required or named).

Every schema is bounded first (:mod:`openwen.engines.schema_limits`): what it asks for, and the
grammar made from it, so that no request can crash or stall llama.cpp's grammar parser. Lengths
and item counts become llama.cpp's ``{m,n}`` repetitions rather than llama-cpp-python's nested
optional groups (``(c (c (c)?)?)?``), so a legal large bound stays a flat grammar.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from openwen.engines.schema_limits import check_grammar, check_schema, check_size
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
        _check_tools(request, tools)
        # a named tool is one call (as OpenAI); "required" may make up to MAX_PARALLEL_CALLS
        parallel = request.parallel_tool_calls and request.tool_choice == "required"
        functions_json = json.dumps(tools, sort_keys=True)
        check_size(functions_json, "tools")
        return _tool_grammar(functions_json, parallel)
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
        check_schema(schema, "response_format")
        schema_json = json.dumps(schema, sort_keys=True)
        check_size(schema_json, "response_format")
        return _schema_grammar(schema_json)
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


def _check_tools(request: ChatRequest, forced: list[dict[str, Any]]) -> None:
    """Bound each forced tool's ``parameters`` schema, naming it as the request does."""
    for i, tool in enumerate(request.tools):
        function = tool.get("function", tool)
        if not any(function is f for f in forced):
            continue
        if not isinstance(function.get("name"), str):
            raise InvalidRequestError("a tool needs a name", param=f"tools[{i}].function.name")
        params = function.get("parameters")
        if params is not None:
            check_schema(params, f"tools[{i}].function.parameters")


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

    functions = json.loads(functions_json)
    schemas = [_call_schema(f) for f in functions]
    schema = schemas[0] if len(schemas) == 1 else {"anyOf": schemas}

    def make() -> Any:
        body = re.sub(r"^root ::=", "tool-call-json ::=", _to_gbnf(json.dumps(schema)), flags=re.M)
        call = '"<tool_call>\\n" tool-call-json "\\n</tool_call>"'
        more = f' ("\\n" {call})?' * (MAX_PARALLEL_CALLS - 1) if parallel else ""
        text = f"root ::= {call}{more}\n{body}"
        check_grammar(text, "tools")
        return LlamaGrammar.from_string(text, verbose=False)

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

    def make() -> Any:
        text = _to_gbnf(schema_json)
        check_grammar(text, "response_format")
        return LlamaGrammar.from_string(text, verbose=False)

    return _build(make)


def _to_gbnf(schema_json: str) -> str:
    """llama-cpp-python's schema converter, with flat ``{m,n}`` repetitions."""
    from llama_cpp import llama_grammar

    if getattr(llama_grammar, "_build_repetition", None) is not _flat_repetition:
        llama_grammar._build_repetition = _flat_repetition  # type: ignore[attr-defined]
    text = str(llama_grammar.json_schema_to_gbnf(schema_json))
    # JSON strings hold no raw control characters (RFC 8259): llama-cpp-python's rule lets a
    # model write a raw newline (and then anything, "</tool_call>" included) inside a string,
    # which no JSON parser reads back; llama.cpp's own converter excludes them.
    return text.replace('char ::= [^"\\\\] |', 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |')


def _flat_repetition(item_rule: str, min_items: int, max_items: int | None,
                     separator_rule: str | None = None, item_rule_is_literal: bool = False
                     ) -> str:
    """``item_rule`` repeated ``min_items`` to ``max_items`` times (None: no limit), optionally
    separated: llama.cpp's own ``build_repetition`` (common/json-schema-to-grammar.cpp), which
    llama-cpp-python 0.3 still spells as nested groups."""
    if max_items == 0:
        return ""
    if min_items == 0 and max_items == 1:
        return f"{item_rule}?"
    if not separator_rule:
        if max_items is None:
            return {0: f"{item_rule}*", 1: f"{item_rule}+"}.get(
                min_items, f"{item_rule}{{{min_items},}}")
        return f"{item_rule}{{{min_items},{max_items}}}"
    rest = _flat_repetition(f"({separator_rule} {item_rule})", max(min_items - 1, 0),
                            None if max_items is None else max_items - 1)
    result = f"{item_rule} {rest}".rstrip()
    return f"({result})?" if min_items == 0 else result


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
