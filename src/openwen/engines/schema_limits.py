"""Bounds on what a client's JSON schema may ask of the grammar engine, checked before llama.cpp
sees anything.

A JSON schema in ``response_format`` or in a forced tool's ``parameters`` becomes a llama.cpp
grammar. Unchecked, a tiny request could make a huge or deeply nested grammar, and llama.cpp's
recursive grammar parser overflows the stack (the process dies) or loops on a bad repetition
range. Two checks stand in the way, each answered with a 400 naming the request field:

- :func:`check_schema` walks the schema itself (following local ``$ref``): nesting depth, the
  number of sub-schemas, lengths and item counts (``minLength``/``maxLength``/``minItems``/...),
  ``enum`` values, properties per object, ``pattern`` size and its ``{m,n}`` counts, total size.
- :func:`check_grammar` checks the grammar text produced from it, whatever its shape: size,
  nesting of groups, every ``{m,n}`` repetition and their sum, and finally that llama.cpp itself
  parses it (a grammar llama.cpp rejects, such as a left-recursive ``$ref``, would otherwise reach
  the sampler as a null pointer).

The limits are generous for real schemas (OpenAI's structured outputs allow 10 levels of nesting
and 1,000 enum values; a count of 2,000 is llama.cpp's own repetition limit).
"""

from __future__ import annotations

import re
from typing import Any

from openwen.errors import InvalidRequestError

MAX_SCHEMA_BYTES = 256 * 1024  # serialized schema (all forced tools together)
MAX_DEPTH = 32  # nesting of sub-schemas, through $ref
MAX_NODES = 5_000  # sub-schemas in one schema
MAX_COUNT = 2_000  # minLength, maxLength, minItems, maxItems, ..., pattern {m,n}
MAX_ENUM_VALUES = 1_000  # enum values in one schema, all enums together
MAX_PROPERTIES = 256  # properties of one object
MAX_PATTERN_CHARS = 1_000  # one pattern
MAX_PATTERN_GROUPS = 20  # nested ( ) groups in one pattern
MAX_GRAMMAR_BYTES = 1_000_000
MAX_GRAMMAR_NESTING = 100  # nested ( ) groups in the grammar text
MAX_GRAMMAR_REPEATS = 50_000  # sum of all repetition counts: llama.cpp makes a rule per step

COUNT_KEYS = ("minLength", "maxLength", "minItems", "maxItems", "minProperties",
              "maxProperties", "minContains", "maxContains")
COUNT_PAIRS = (("minLength", "maxLength"), ("minItems", "maxItems"),
               ("minProperties", "maxProperties"), ("minContains", "maxContains"))
SCHEMA_VALUES = ("items", "additionalProperties", "not", "contains", "if", "then", "else",
                 "propertyNames", "additionalItems", "unevaluatedItems", "unevaluatedProperties")
SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
SCHEMA_MAPS = ("properties", "patternProperties", "dependentSchemas")
_QUANTIFIER = re.compile(r"\{\s*(\d*)\s*(?:,\s*(\d*)\s*)?\}")


class SchemaTooComplexError(InvalidRequestError):
    code = "schema_too_complex"


def _fail(param: str, message: str) -> SchemaTooComplexError:
    return SchemaTooComplexError(f"{param}: {message}", param=param)


def check_schema(schema: Any, param: str) -> None:
    """Raise a 400 naming ``param`` when ``schema`` asks for more than the limits allow."""
    if not isinstance(schema, dict | bool):
        raise _fail(param, "a JSON schema must be an object")
    _Walk(schema, param).height(schema, 0)


def check_size(schema_json: str, param: str) -> None:
    if len(schema_json) > MAX_SCHEMA_BYTES:
        raise _fail(param, f"the schema is {len(schema_json)} bytes long, over the limit of "
                           f"{MAX_SCHEMA_BYTES}")


class _Walk:
    """One pass over a schema; each ``$ref`` target is walked once (its height remembered)."""

    def __init__(self, root: Any, param: str):
        self.root = root
        self.param = param
        self.nodes = 0
        self.enum_values = 0
        self.heights: dict[str, int] = {}
        self.active: set[str] = {"#"}

    def fail(self, message: str) -> SchemaTooComplexError:
        return _fail(self.param, message)

    def height(self, node: Any, level: int) -> int:
        """How many levels lie below ``node`` (raising past the limits)."""
        if level > MAX_DEPTH:
            raise self.fail(f"the schema nests deeper than {MAX_DEPTH} levels")
        if isinstance(node, bool):
            return 0
        if not isinstance(node, dict):
            raise self.fail(f"a sub-schema must be an object or a boolean, not {node!r:.40}")
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail(f"the schema has more than {MAX_NODES} sub-schemas")
        self.check_node(node)
        below = 0
        for child in self.children(node):
            below = max(below, 1 + self.height(child, level + 1))
        ref = node.get("$ref")
        if isinstance(ref, str):
            below = max(below, 1 + self.ref_height(ref, level + 1))
        return below

    def ref_height(self, ref: str, level: int) -> int:
        if ref in self.active:  # a recursive schema: llama.cpp refuses the left-recursive kind
            return 0
        if ref in self.heights:
            if level + self.heights[ref] > MAX_DEPTH:
                raise self.fail(f"the schema nests deeper than {MAX_DEPTH} levels")
            return self.heights[ref]
        if not ref.startswith("#/"):
            raise self.fail(f"$ref '{ref:.80}' is not supported: only local references "
                            "(#/...) are")
        target = self.resolve(ref)
        self.active.add(ref)
        try:
            found = self.height(target, level)
        finally:
            self.active.discard(ref)
        self.heights[ref] = found
        return found

    def resolve(self, ref: str) -> Any:
        target = self.root
        for part in ref[2:].split("/"):
            if isinstance(target, dict) and part in target:
                target = target[part]
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            else:
                raise self.fail(f"$ref '{ref:.80}' points to nothing in the schema")
        return target

    @staticmethod
    def children(node: dict[str, Any]) -> list[Any]:
        found: list[Any] = []
        for key in SCHEMA_VALUES:
            value = node.get(key)
            if isinstance(value, list):  # old-style tuple "items"
                found.extend(value)
            elif value is not None:
                found.append(value)
        for key in SCHEMA_LISTS:
            value = node.get(key)
            if isinstance(value, list):
                found.extend(value)
        for key in SCHEMA_MAPS:
            value = node.get(key)
            if isinstance(value, dict):
                found.extend(value.values())
        return found

    def check_node(self, node: dict[str, Any]) -> None:
        for key in COUNT_KEYS:
            if key in node:
                value = node[key]
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise self.fail(f"{key} must be a non-negative integer, not {value!r:.40}")
                if value > MAX_COUNT:
                    raise self.fail(f"{key} {value} is over the limit of {MAX_COUNT}")
        for low, high in COUNT_PAIRS:
            if low in node and high in node and node[low] > node[high]:
                raise self.fail(f"{low} {node[low]} is more than {high} {node[high]}")
        if "enum" in node:
            values = node["enum"]
            if not isinstance(values, list) or not values:
                raise self.fail("enum must be a non-empty array")
            self.enum_values += len(values)
            if self.enum_values > MAX_ENUM_VALUES:
                raise self.fail(f"the schema has more than {MAX_ENUM_VALUES} enum values")
        properties = node.get("properties")
        if properties is not None and not isinstance(properties, dict):
            raise self.fail("properties must be an object")
        if isinstance(properties, dict) and len(properties) > MAX_PROPERTIES:
            raise self.fail(f"an object has {len(properties)} properties, over the limit of "
                            f"{MAX_PROPERTIES}")
        if "pattern" in node:
            self.check_pattern(node["pattern"])

    def check_pattern(self, pattern: Any) -> None:
        if not isinstance(pattern, str):
            raise self.fail("pattern must be a string")
        if len(pattern) > MAX_PATTERN_CHARS:
            raise self.fail(f"a pattern is {len(pattern)} characters long, over the limit of "
                            f"{MAX_PATTERN_CHARS}")
        if _pattern_nesting(pattern) > MAX_PATTERN_GROUPS:
            raise self.fail(f"a pattern nests more than {MAX_PATTERN_GROUPS} groups")
        for match in _QUANTIFIER.finditer(pattern):
            low = int(match[1] or 0)
            high = int(match[2]) if match[2] else None
            if max(low, high or 0) > MAX_COUNT:
                raise self.fail(f"pattern repetition {match[0]} is over the limit of {MAX_COUNT}")
            if high is not None and low > high:
                raise self.fail(f"pattern repetition {match[0]} has its minimum over its maximum")


def _pattern_nesting(pattern: str) -> int:
    """The deepest ( ) nesting of a regular expression (escapes and classes skipped)."""
    depth = deepest = 0
    i, end = 0, len(pattern)
    while i < end:
        c = pattern[i]
        if c == "\\":
            i += 1
        elif c == "[":
            while i < end and pattern[i] != "]":
                i += 2 if pattern[i] == "\\" else 1
        elif c == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif c == ")":
            depth -= 1
        i += 1
    return deepest


# -- the grammar text -------------------------------------------------------------------------


def check_grammar(text: str, param: str) -> None:
    """Raise a 400 naming ``param`` unless llama.cpp can safely parse the GBNF ``text``."""
    if len(text) > MAX_GRAMMAR_BYTES:
        raise _fail(param, f"the schema makes a grammar of {len(text)} bytes, over the limit "
                           f"of {MAX_GRAMMAR_BYTES}; simplify the schema")
    nesting, repeats = _scan(text, param)
    if nesting > MAX_GRAMMAR_NESTING:
        raise _fail(param, f"the schema makes a grammar nested {nesting} levels deep, over the "
                           f"limit of {MAX_GRAMMAR_NESTING}; simplify the schema")
    if repeats > MAX_GRAMMAR_REPEATS:
        raise _fail(param, f"the schema's lengths and item counts add up to {repeats}, over "
                           f"the limit of {MAX_GRAMMAR_REPEATS}")
    if not _llama_parses(text):
        raise _fail(param, "llama.cpp refuses the grammar this schema makes (a large count on "
                           "a complex item, or a $ref that refers to itself without progress)")


def _scan(text: str, param: str) -> tuple[int, int]:
    """The deepest ( ) nesting and the sum of ``{m,n}`` counts, outside literals and classes
    (the way llama.cpp's parser reads GBNF)."""
    depth = deepest = repeats = 0
    i, end = 0, len(text)
    while i < end:
        c = text[i]
        if c in "\"[":
            close = '"' if c == '"' else "]"
            i += 1
            while i < end and text[i] != close:
                i += 2 if text[i] == "\\" else 1
        elif c == "#":
            while i < end and text[i] not in "\r\n":
                i += 1
        elif c == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif c == ")":
            depth -= 1
        elif c == "{":
            match = _QUANTIFIER.match(text, i)
            if match is None:
                raise _fail(param, "the schema makes a malformed grammar repetition")
            low = int(match[1] or 0)
            high = int(match[2]) if match[2] else (low if match[0].find(",") < 0 else None)
            if max(low, high or 0) > MAX_COUNT or (high is not None and low > high):
                raise _fail(param, f"the schema makes a grammar repetition {match[0]}, outside "
                                   f"0..{MAX_COUNT}")
            repeats += max(low, high or 0)
            i = match.end() - 1
        i += 1
    return deepest, repeats


def _llama_parses(text: str) -> bool:
    """Whether llama.cpp's own parser accepts ``text`` (no vocabulary needed: schema grammars
    have no token references). Only call this on text :func:`_scan` has bounded."""
    import llama_cpp

    sampler = llama_cpp.llama_sampler_init_grammar(None, text.encode("utf-8"), b"root")
    if not sampler:
        return False
    llama_cpp.llama_sampler_free(sampler)
    return True
