"""The calculator (an AST walk, never eval) and the clock."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from openwen.tools.base import ToolError
from openwen.tools.builtin.calculator import calculator, evaluate, make_calculator
from openwen.tools.builtin.clock import current_datetime


@pytest.mark.parametrize(("expression", "expected"), [
    ("2 + 3 * 4", "14"),
    ("(2 + 3) * 4", "20"),
    ("7 // 2 + 7 % 2", "4"),
    ("2 ** 100", str(2 ** 100)),
    ("-3 ** 2", "-9"),
    ("1 / 4", "0.25"),
    ("sqrt(16) + log(8, 2) + log10(1000)", "10"),
    ("round(pi, 3)", "3.142"),
    ("factorial(10)", "3628800"),
    ("max(3, 9, 4) - min(3, 9, 4)", "6"),
    ("6 × 7", "42"),
])
def test_arithmetic(expression: str, expected: str) -> None:
    assert calculator(expression) == expected


@pytest.mark.parametrize(("expression", "message"), [
    ("__import__('os').system('id')", "unknown function"),
    ("(1).__class__", "not supported"),
    ("open", "unknown name"),
    ("[1, 2]", "not supported"),
    ("'a' * 3", "not a number"),
    ("True + 1", "not a number"),
    ("lambda: 1", "not supported"),
    ("9 ** 9 ** 9", "exponent is too large"),
    ("10 ** 100000", "exponent is too large"),
    ("2.5 ** 10000", "too large"),
    ("factorial(100000)", "limited"),
    ("1 / 0", "division by zero"),
    ("sqrt(-1)", "math error"),
    ("2 ^ 8", "write **"),
    ("1 +", "cannot parse"),
    ("1" + "+1" * 300, "longer than"),
])
def test_refusals_are_clear(expression: str, message: str) -> None:
    with pytest.raises(ToolError, match=re.escape(message)):
        evaluate(expression)


async def test_calculator_tool_reports_errors_to_the_model() -> None:
    out = await make_calculator().call({"expression": "1/0"})
    assert out.error == "tool_error" and "division by zero" in out.text


def test_clock_in_a_named_zone() -> None:
    text = current_datetime("Asia/Tokyo")
    assert "+09:00" in text
    iso = text.rsplit("ISO ", 1)[1].rstrip(")")
    now = datetime.now(ZoneInfo("Asia/Tokyo"))
    assert abs((datetime.fromisoformat(iso) - now).total_seconds()) < 3600
    assert now.strftime("%A") in text or (now.hour == 0 and now.minute == 0)


def test_clock_refuses_an_unknown_zone() -> None:
    with pytest.raises(ToolError, match="unknown time zone"):
        current_datetime("Mars/Olympus_Mons")
    with pytest.raises(ToolError):
        current_datetime("../../etc/passwd")
