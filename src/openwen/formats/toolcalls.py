"""Parse the body of one ``<tool_call>...</tool_call>`` block, in either of Qwen's two forms.

JSON form (Qwen2.5, Qwen3, Hermes)::

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "杭州"}}
    </tool_call>

XML form (Qwen3-Coder, Qwen3.5)::

    <tool_call>
    <function=get_weather>
    <parameter=city>
    杭州
    </parameter>
    </function>
    </tool_call>

XML parameter values are text; they are converted with the tool's JSON schema when it names a
type (``integer``, ``number``, ``boolean``, ``object``, ``array``, ``null``) and kept as strings
otherwise or when the conversion fails. Arguments come out as JSON text (non-ASCII kept).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from openwen.messages import ToolCall

_FUNCTION_RE = re.compile(r"<function=([^>\n]+)>(.*?)</function>", re.DOTALL)
_PARAMETER_RE = re.compile(r"<parameter=([^>\n]+)>(.*?)</parameter>", re.DOTALL)

ToolSchemas = Mapping[str, Mapping[str, Any]]
"""Tool name -> JSON schema of its parameters (``properties`` etc.)."""


def new_call_id() -> str:
    """A fresh OpenAI-style tool call id: ``call_`` + 24 random hex digits."""
    return "call_" + secrets.token_hex(12)


def tool_schemas(tools: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Map each tool's name to its parameters schema; accepts OpenAI tool defs or bare functions."""
    schemas: dict[str, Mapping[str, Any]] = {}
    for tool in tools:
        fn = tool.get("function", tool)
        if isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
            params = fn.get("parameters")
            schemas[fn["name"]] = params if isinstance(params, Mapping) else {}
    return schemas


def parse_tool_call(body: str, schemas: ToolSchemas | None = None) -> ToolCall | None:
    """The call in ``body`` (the text between the tags), or ``None`` when it is malformed."""
    text = body.strip()
    if text.startswith("{"):
        return _parse_json_call(text)
    if text.startswith("<function="):
        return _parse_xml_call(text, schemas or {})
    return None


def _parse_json_call(text: str) -> ToolCall | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not data["name"]:
        return None
    args = data.get("arguments", data.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError:
            return None
    if not isinstance(args, dict):
        return None
    return ToolCall(id=new_call_id(), name=data["name"], arguments=_dumps(args))


def _parse_xml_call(text: str, schemas: ToolSchemas) -> ToolCall | None:
    match = _FUNCTION_RE.fullmatch(text)
    if match is None:
        return None
    name, inner = match.group(1).strip(), match.group(2)
    if not name:
        return None
    properties = _properties(schemas.get(name, {}))
    args: dict[str, Any] = {}
    for pmatch in _PARAMETER_RE.finditer(inner):
        key = pmatch.group(1).strip()
        args[key] = convert_value(_strip_one_newline(pmatch.group(2)), properties.get(key))
    leftover = _PARAMETER_RE.sub("", inner).strip()
    if leftover:  # stray text or a broken <parameter> tag: not a call we understand
        return None
    return ToolCall(id=new_call_id(), name=name, arguments=_dumps(args))


def _properties(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    props = schema.get("properties") if isinstance(schema, Mapping) else None
    return props if isinstance(props, Mapping) else {}


def _strip_one_newline(value: str) -> str:
    """The template writes ``<parameter=k>\\nVALUE\\n</parameter>``: drop just those newlines."""
    if value.startswith("\n"):
        value = value[1:]
    if value.endswith("\n"):
        value = value[:-1]
    return value


def _schema_types(schema: Any) -> list[str]:
    if not isinstance(schema, Mapping):
        return []
    kind = schema.get("type")
    if isinstance(kind, str):
        return [kind]
    if isinstance(kind, list):
        return [k for k in kind if isinstance(k, str)]
    types: list[str] = []
    for key in ("anyOf", "oneOf"):
        for option in schema.get(key) or []:
            types.extend(_schema_types(option))
    return types


def convert_value(value: str, schema: Any) -> Any:
    """Convert one XML parameter value by its JSON schema; keep the string when unsure."""
    types = _schema_types(schema)
    if "null" in types and value.strip() == "null":
        return None
    for kind in (t for t in types if t != "null"):
        converted = _convert(value, kind)
        if converted is not _FAILED:
            return converted
    return value


_FAILED = object()


def _convert(value: str, kind: str) -> Any:
    text = value.strip()
    if kind == "string":
        return value
    if kind == "boolean":
        lowered = text.lower()
        return {"true": True, "false": False}.get(lowered, _FAILED)
    if kind in ("integer", "number"):
        try:
            number = json.loads(text)
        except ValueError:
            return _FAILED
        if isinstance(number, bool) or not isinstance(number, int | float):
            return _FAILED
        if kind == "integer":
            return number if isinstance(number, int) else _integral(number)
        return number
    if kind in ("object", "array"):
        try:
            data = json.loads(text)
        except ValueError:
            return _FAILED
        wanted = dict if kind == "object" else list
        return data if isinstance(data, wanted) else _FAILED
    return _FAILED


def _integral(number: float) -> Any:
    return int(number) if number.is_integer() else _FAILED


def _dumps(args: Mapping[str, Any]) -> str:
    return json.dumps(args, ensure_ascii=False)
