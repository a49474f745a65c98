"""The tool protocol: schema from type hints and docstrings, validation before the call."""

from __future__ import annotations

import asyncio
import json
from typing import Literal

import pytest

from openwen.config import Settings
from openwen.tools.base import FunctionTool, ToolError, ToolOutput, parse_docstring, tool
from openwen.tools.registry import ToolRegistry, confirmation_required


def convert(amount: float, unit: Literal["km", "mi"] = "km", digits: int | None = None) -> str:
    """Convert a distance.

    Both units are accepted.

    Args:
        amount: the distance to convert,
            which may be fractional.
        unit (str): the unit of ``amount``.
        digits: round to this many digits.

    Returns:
        the converted distance.
    """
    value = amount * 1.609344 if unit == "mi" else amount / 1.609344
    return str(round(value, digits) if digits is not None else value)


def test_schema_comes_from_type_hints_and_the_docstring() -> None:
    definition = FunctionTool(convert).definition()
    assert definition["type"] == "function"
    function = definition["function"]
    assert function["name"] == "convert"
    assert function["description"] == "Convert a distance.\n\nBoth units are accepted."
    params = function["parameters"]
    assert params["type"] == "object"
    assert params["required"] == ["amount"]
    assert params["additionalProperties"] is False
    props = params["properties"]
    assert props["amount"] == {"type": "number",
                               "description": "the distance to convert, which may be fractional."}
    assert props["unit"]["enum"] == ["km", "mi"] and props["unit"]["default"] == "km"
    assert props["unit"]["description"] == "the unit of ``amount``."
    assert "title" not in json.dumps(params)


def test_a_property_named_title_survives_cleaning() -> None:
    def note(title: str) -> str:
        """Make a note."""
        return title

    assert "title" in FunctionTool(note).parameters["properties"]


async def test_valid_arguments_run_the_function() -> None:
    out = await FunctionTool(convert).call('{"amount": 10, "unit": "mi", "digits": 2}')
    assert out == ToolOutput("16.09")


@pytest.mark.parametrize(("arguments", "expected"), [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ("{}", "'amount' is required"),
    ('{"amount": "far"}', "'amount': Input should be a valid number"),
    ('{"amount": 1, "unit": "parsec"}', "'unit'"),
    ('{"amount": 1, "speed": 3}', "unexpected argument 'speed'"),
])
async def test_bad_arguments_become_a_clear_error_result(arguments: str, expected: str) -> None:
    out = await FunctionTool(convert).call(arguments)
    assert out.error == "invalid_arguments"
    assert expected in out.text
    assert '"amount": number' in out.text  # the model is reminded of the schema


async def test_tool_errors_and_crashes_become_results() -> None:
    @tool
    def picky(x: int) -> int:
        """Refuses odd numbers and crashes on zero."""
        if x == 0:
            return 1 // x
        if x % 2:
            raise ToolError("odd numbers are not allowed")
        return x

    assert (await picky.call({"x": 4})).text == "4"
    refused = await picky.call({"x": 3})
    assert refused.error == "tool_error" and refused.text == "Error: odd numbers are not allowed"
    crashed = await picky.call({"x": 0})
    assert crashed.error == "tool_failed" and "ZeroDivisionError" in crashed.text


async def test_async_tools_and_the_timeout() -> None:
    @tool(timeout=0.05)
    async def slow(wait: float) -> dict[str, float]:
        """Waits."""
        await asyncio.sleep(wait)
        return {"waited": wait}

    assert json.loads((await slow.call({"wait": 0})).text) == {"waited": 0}
    out = await slow.call({"wait": 30})
    assert out.error == "timeout" and "did not finish" in out.text


def test_untyped_parameters_are_refused() -> None:
    def loose(x):  # type: ignore[no-untyped-def]
        """No hints."""
        return x

    with pytest.raises(TypeError, match="type hint"):
        FunctionTool(loose)


def test_docstring_without_sections() -> None:
    assert parse_docstring("Just one line.") == ("Just one line.", {})


async def test_registry_reports_unknown_tools_and_the_confirmation_policy() -> None:
    @tool(side_effects=True)
    def delete(path: str) -> str:
        """Deletes."""
        return path

    registry = ToolRegistry([FunctionTool(convert), delete])
    unknown = await registry.call("nope", "{}")
    assert unknown.error == "unknown_tool" and "convert, delete" in unknown.text
    with pytest.raises(ValueError, match="two tools"):
        registry.add(delete)
    assert confirmation_required("side-effects", registry) == {"delete"}
    assert confirmation_required("all", registry) == {"delete", "convert"}
    assert confirmation_required("none", registry) == set()
    assert confirmation_required("convert, x", registry) == {"convert", "x"}
    assert registry.select(["delete"]).names() == ["delete"]


def test_user_tools_add_shared_tools_to_the_builtins(settings: Settings) -> None:
    from openwen.tools.registry import user_tools

    shared = FunctionTool(convert, source="mcp:units")
    clash = FunctionTool(convert, name="calculator", source="mcp:bad")
    registry = user_tools(settings, "alice", [shared, clash])
    assert registry.get("convert").source == "mcp:units"  # type: ignore[union-attr]
    assert registry.get("calculator").source == "builtin"  # type: ignore[union-attr]
    assert "two tools are named 'calculator'" in registry.problems["mcp:bad"]
