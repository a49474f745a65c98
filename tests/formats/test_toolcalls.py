"""Parsing one tool-call body: JSON form, XML form, schema-typed XML values."""

from __future__ import annotations

import json

import pytest

from openwen.formats.toolcalls import convert_value, new_call_id, parse_tool_call, tool_schemas

SCHEMA = {
    "type": "object",
    "properties": {
        "n": {"type": "integer"},
        "x": {"type": "number"},
        "flag": {"type": "boolean"},
        "obj": {"type": "object"},
        "items": {"type": "array"},
        "text": {"type": "string"},
        "maybe": {"type": ["integer", "null"]},
        "either": {"anyOf": [{"type": "boolean"}, {"type": "string"}]},
    },
}


def test_json_form() -> None:
    call = parse_tool_call('\n{"name": "搜索", "arguments": {"q": "熊猫 🐼", "k": 3}}\n')
    assert call is not None
    assert call.name == "搜索"
    assert call.arguments == '{"q": "熊猫 🐼", "k": 3}'  # JSON text, non-ASCII kept
    assert call.id.startswith("call_")


def test_json_form_variants() -> None:
    as_string = parse_tool_call('{"name": "f", "arguments": "{\\"a\\": 1}"}')
    assert as_string is not None and json.loads(as_string.arguments) == {"a": 1}
    parameters_key = parse_tool_call('{"name": "f", "parameters": {"a": 1}}')
    assert parameters_key is not None and json.loads(parameters_key.arguments) == {"a": 1}
    no_args = parse_tool_call('{"name": "f"}')
    assert no_args is not None and no_args.arguments == "{}"


def test_xml_form_typed_by_schema() -> None:
    body = (
        "\n<function=run>\n"
        "<parameter=n>\n42\n</parameter>\n"
        "<parameter=x>\n2.5\n</parameter>\n"
        "<parameter=flag>\nTrue\n</parameter>\n"
        '<parameter=obj>\n{"a": [1, "二"]}\n</parameter>\n'
        "<parameter=items>\n[1, 2]\n</parameter>\n"
        "<parameter=text>\n 007 \n</parameter>\n"
        "<parameter=maybe>\nnull\n</parameter>\n"
        "<parameter=either>\nfalse\n</parameter>\n"
        "<parameter=unknown>\n12\n</parameter>\n"
        "</function>\n"
    )
    call = parse_tool_call(body, {"run": SCHEMA})
    assert call is not None and call.name == "run"
    assert json.loads(call.arguments) == {
        "n": 42,
        "x": 2.5,
        "flag": True,
        "obj": {"a": [1, "二"]},
        "items": [1, 2],
        "text": " 007 ",
        "maybe": None,
        "either": False,
        "unknown": "12",  # not in the schema: stays a string
    }


def test_xml_form_without_schema_keeps_strings_and_inner_newlines() -> None:
    body = "<function=write>\n<parameter=body>\n\nline 1\nline 2\n\n</parameter>\n</function>"
    call = parse_tool_call(body)
    assert call is not None
    assert json.loads(call.arguments) == {"body": "\nline 1\nline 2\n"}


@pytest.mark.parametrize(
    ("value", "schema", "expected"),
    [
        ("12", {"type": "integer"}, 12),
        ("12.0", {"type": "integer"}, 12),
        ("12.5", {"type": "integer"}, "12.5"),
        ("twelve", {"type": "integer"}, "twelve"),
        ("1e3", {"type": "number"}, 1000.0),
        ("yes", {"type": "boolean"}, "yes"),
        ("FALSE", {"type": "boolean"}, False),
        ("[1", {"type": "array"}, "[1"),
        ("{}", {"type": "array"}, "{}"),
        ("null", {"type": "string"}, "null"),
        ("3", None, "3"),
        ("3", {"type": ["null", "integer"]}, 3),
    ],
)
def test_convert_value(value: str, schema: object, expected: object) -> None:
    assert convert_value(value, schema) == expected
    assert type(convert_value(value, schema)) is type(expected)


def test_tool_schemas_accepts_openai_and_bare_definitions() -> None:
    tools = [
        {"type": "function", "function": {"name": "a", "parameters": {"type": "object"}}},
        {"name": "b"},
        {"type": "function", "function": {"description": "no name"}},
    ]
    assert tool_schemas(tools) == {"a": {"type": "object"}, "b": {}}


def test_call_ids_are_fresh() -> None:
    ids = {new_call_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(i.startswith("call_") and len(i) == 29 for i in ids)
    assert all(int(i[5:], 16) >= 0 for i in ids)
