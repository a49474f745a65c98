"""Client JSON schemas are bounded before they become llama.cpp grammars (issue 10, finding 1).

Each pathological schema must give a clean 400 naming the request field, quickly, instead of
crashing the process (llama.cpp's recursive grammar parser) or hanging it. Legal large bounds
make flat ``{m,n}`` grammars that llama.cpp accepts.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from openwen.engines.grammar import _flat_repetition, _to_gbnf, grammar_for
from openwen.engines.schema_limits import (
    MAX_COUNT,
    MAX_GRAMMAR_NESTING,
    _scan,
    check_grammar,
)
from openwen.errors import InvalidRequestError
from openwen.messages import Message
from openwen.requests import ChatRequest

HELLO = (Message(role="user", content="hi"),)


def nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}, "required": ["a"]}
    return schema


def ref_chain(length: int) -> dict[str, Any]:
    defs = {f"d{i}": {"$ref": f"#/$defs/d{i + 1}"} for i in range(length)}
    defs[f"d{length}"] = {"type": "string"}
    return {"$defs": defs, "$ref": "#/$defs/d0"}


def with_defs(defs: dict[str, Any], first: str) -> dict[str, Any]:
    """An object whose property refers into ``$defs`` (llama-cpp-python's converter does not
    follow ``$ref`` inside ``$defs`` when the root itself is a ``$ref``)."""
    return {"type": "object", "properties": {"x": {"$ref": f"#/$defs/{first}"}},
            "required": ["x"], "$defs": defs}


def diamond(levels: int) -> dict[str, Any]:
    """Each level refers to the next one twice: walking it naively is 2**levels work."""
    defs = {f"l{i}": {"type": "object", "properties": {
        "x": {"$ref": f"#/$defs/l{i + 1}"}, "y": {"$ref": f"#/$defs/l{i + 1}"}}}
        for i in range(levels)}
    defs[f"l{levels}"] = {"type": "integer"}
    return with_defs(defs, "l0")


PATHOLOGICAL: dict[str, Any] = {
    "the audit's maxLength": {"type": "string", "maxLength": 50_000},
    "huge minLength": {"type": "string", "minLength": 10**12},
    "min over max": {"type": "string", "minLength": 9, "maxLength": 3},
    "negative maxLength": {"type": "string", "maxLength": -1},
    "float maxItems": {"type": "array", "items": {"type": "integer"}, "maxItems": 2.5},
    "huge item count": {"type": "array", "items": {"type": "integer"}, "minItems": 100_000},
    "deep nesting": nested(500),
    "deep arrays": {"type": "array", "items": {"type": "array", "items": {"type": "array",
                    "items": nested(60)}}},
    "huge enum": {"enum": [f"v{i}" for i in range(50_000)]},
    "many properties": {"type": "object",
                        "properties": {f"p{i}": {"type": "string"} for i in range(5_000)}},
    "big pattern repetition": {"type": "string", "pattern": "^a{1,100000}$"},
    "pattern min over max": {"type": "string", "pattern": "^a{9,3}$"},
    "nested pattern groups": {"type": "string", "pattern": "^" + "(" * 400 + "a" + ")" * 400 +
                              "$"},
    "long pattern": {"type": "string", "pattern": "^" + "ab" * 5_000 + "$"},
    "self $ref": {"$ref": "#"},
    "left-recursive $ref": with_defs({"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}},
                                     "a"),
    "recursive anyOf": with_defs({"a": {"anyOf": [{"$ref": "#/$defs/a"}, {"type": "null"}]}},
                                 "a"),
    "a separated count llama.cpp refuses": {"type": "array", "maxItems": 2_000, "items": {
        "type": "string", "maxLength": 5}},
    "long $ref chain": ref_chain(10_000),
    "dangling $ref": {"$ref": "#/$defs/nowhere"},
    "remote $ref": {"$ref": "https://example.com/schema.json"},
    "many big strings": {"type": "object", "properties": {
        f"p{i}": {"type": "string", "maxLength": 2_000} for i in range(100)}},
    "not an object": ["type", "string"],
    "a sub-schema that is a number": {"type": "object", "properties": {"a": 5}},
}


@pytest.fixture(scope="module", autouse=True)
def _loaded() -> None:
    """Load llama.cpp's library once, outside the timed calls."""
    grammar_for(schema_request({"type": "object"}))


def schema_request(schema: Any) -> ChatRequest:
    return ChatRequest(messages=HELLO, response_format={
        "type": "json_schema", "json_schema": {"name": "x", "schema": schema}})


@pytest.mark.parametrize("name", list(PATHOLOGICAL))
def test_pathological_schemas_get_a_clean_400_quickly(name: str) -> None:
    started = time.perf_counter()
    with pytest.raises(InvalidRequestError) as caught:
        grammar_for(schema_request(PATHOLOGICAL[name]))
    assert time.perf_counter() - started < 1.0, "did not answer within a second"
    assert caught.value.status == 400
    assert caught.value.param == "response_format"
    assert caught.value.message.startswith("response_format")


@pytest.mark.parametrize("name", ["left-recursive $ref", "recursive anyOf",
                                  "a separated count llama.cpp refuses"])
def test_llama_cpp_itself_checks_each_grammar_before_any_sampler(name: str) -> None:
    """Such a grammar used to reach the sampler as a null pointer (a crash)."""
    with pytest.raises(InvalidRequestError, match="llama.cpp refuses"):
        grammar_for(schema_request(PATHOLOGICAL[name]))


@pytest.mark.parametrize("name", ["the audit's maxLength", "deep nesting", "huge enum",
                                  "left-recursive $ref"])
def test_forced_tool_schemas_are_bounded_and_named(name: str) -> None:
    tools = (
        {"type": "function", "function": {"name": "fine", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "bad", "parameters": {
            "type": "object", "properties": {"x": PATHOLOGICAL[name]}}}},
    )
    started = time.perf_counter()
    with pytest.raises(InvalidRequestError) as caught:
        grammar_for(ChatRequest(messages=HELLO, tools=tools, tool_choice="required"))
    assert time.perf_counter() - started < 1.0
    assert caught.value.param in ("tools[1].function.parameters", "tools")


def test_an_unforced_tool_is_not_turned_into_a_grammar() -> None:
    tools = ({"type": "function", "function": {"name": "bad", "parameters": {
        "type": "string", "maxLength": 50_000}}},)
    assert grammar_for(ChatRequest(messages=HELLO, tools=tools, tool_choice="auto")) is None


@pytest.mark.parametrize("schema", [
    {"type": "string", "maxLength": MAX_COUNT},
    {"type": "array", "items": {"type": "string", "maxLength": 500}, "maxItems": 1_000},
    {"type": "string", "pattern": "^[a-z]{2,2000}$"},
    nested(30),
    diamond(12),
    with_defs({"node": {"type": "object", "properties": {  # a recursive tree is fine
        "name": {"type": "string"}, "children": {"type": "array", "items": {
            "$ref": "#/$defs/node"}}}, "required": ["name"]}}, "node"),
], ids=["max string", "max array", "max pattern", "30 levels", "diamond refs", "tree"])
def test_legal_large_schemas_make_flat_grammars_llama_cpp_accepts(schema: Any) -> None:
    import json

    started = time.perf_counter()
    assert grammar_for(schema_request(schema)) is not None
    assert time.perf_counter() - started < 5.0
    nesting, _ = _scan(_to_gbnf(json.dumps(schema)), "x")
    assert nesting < MAX_GRAMMAR_NESTING


def test_flat_repetition_spells_llama_cpp_repetitions() -> None:
    assert _flat_repetition("c", 0, 2000) == "c{0,2000}"
    assert _flat_repetition("c", 3, None) == "c{3,}"
    assert _flat_repetition("c", 0, None) == "c*"
    assert _flat_repetition("c", 1, None) == "c+"
    assert _flat_repetition("c", 0, 1) == "c?"
    assert _flat_repetition("c", 0, 0) == ""
    assert _flat_repetition("i", 0, 3, '","') == '(i ("," i){0,2})?'
    assert _flat_repetition("i", 2, None, '","') == 'i ("," i)+'
    assert _flat_repetition("i", 1, 1, '","') == "i"


@pytest.mark.parametrize(("text", "problem"), [
    ('root ::= ' + "(" * 200 + '"a"' + ")" * 200, "nested"),
    ('root ::= "a"{5,3}', "outside"),
    ('root ::= "a"{0,5000}', "outside"),
    ('root ::= x\nx ::= x "a"', "refuses"),
    ('root ::= "unterminated', "refuses"),
    ("root ::= " + " ".join(['"a"{0,2000}'] * 30), "add up"),
])
def test_grammar_text_is_checked_whatever_made_it(text: str, problem: str) -> None:
    with pytest.raises(InvalidRequestError, match=problem):
        check_grammar(text, "response_format")


def test_literals_and_classes_do_not_count_as_nesting() -> None:
    assert _scan('root ::= "((((" [(]{2} "\\"(" # ((((\n', "x") == (0, 2)
