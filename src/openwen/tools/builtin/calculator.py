"""A calculator that evaluates arithmetic by walking the syntax tree (never ``eval``)."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from openwen.tools.base import FunctionTool, ToolError

MAX_EXPRESSION_CHARS = 500
MAX_INT_BITS = 100_000  # about 30,000 decimal digits
MAX_FACTORIAL = 5_000

Number = int | float

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos, ast.USub: operator.neg}
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau, "inf": math.inf}


def _factorial(n: Number) -> int:
    if not float(n).is_integer() or n < 0:
        raise ToolError("factorial needs a non-negative whole number")
    if n > MAX_FACTORIAL:
        raise ToolError(f"factorial is limited to n <= {MAX_FACTORIAL}")
    return math.factorial(int(n))


def _log(x: Number, base: Number = math.e) -> float:
    return math.log(x, base)


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs, "round": round, "min": min, "max": max,
    "sqrt": math.sqrt, "cbrt": math.cbrt, "exp": math.exp, "log": _log, "ln": math.log,
    "log10": math.log10, "log2": math.log2,
    "sin": math.sin, "cos": math.cos, "tan": math.tan, "asin": math.asin, "acos": math.acos,
    "atan": math.atan, "atan2": math.atan2, "sinh": math.sinh, "cosh": math.cosh,
    "tanh": math.tanh, "degrees": math.degrees, "radians": math.radians, "hypot": math.hypot,
    "floor": math.floor, "ceil": math.ceil, "trunc": math.trunc, "factorial": _factorial,
    "gcd": math.gcd, "lcm": math.lcm,
}


def evaluate(expression: str) -> Number:
    """Evaluate an arithmetic expression; :class:`ToolError` explains anything refused."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    text = expression.strip().replace("×", "*").replace("÷", "/").replace("−", "-")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ToolError(f"cannot parse {expression!r} as arithmetic") from None
    try:
        return _check(_eval(tree.body))
    except ToolError:
        raise
    except ZeroDivisionError:
        raise ToolError("division by zero") from None
    except OverflowError:
        raise ToolError("the result is too large") from None
    except (ValueError, TypeError) as exc:
        raise ToolError(f"math error: {exc}") from None


def _eval(node: ast.expr) -> Number:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise ToolError(f"{node.value!r} is not a number")
        return node.value
    if isinstance(node, ast.BinOp):
        return _binary(node)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _check(_UNARY[type(node.op)](_eval(node.operand)))
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise ToolError(f"unknown name {node.id!r}; constants: {', '.join(_CONSTANTS)}")
    if isinstance(node, ast.Call):
        return _call(node)
    raise ToolError(f"'{ast.unparse(node)}' is not supported; use numbers, + - * / // % **, "
                    "parentheses and math functions")


def _binary(node: ast.BinOp) -> Number:
    if isinstance(node.op, ast.BitXor):
        raise ToolError("'^' is not a power here; write ** (2**10)")
    op = _BINARY.get(type(node.op))
    if op is None:
        raise ToolError(f"operator {type(node.op).__name__} is not supported")
    left, right = _eval(node.left), _eval(node.right)
    if isinstance(node.op, ast.Pow):
        _check_power(left, right)
    return _check(op(left, right))


def _check_power(base: Number, exponent: Number) -> None:
    if (isinstance(base, int) and isinstance(exponent, int) and abs(base) > 1 and exponent > 0
            and exponent * base.bit_length() > MAX_INT_BITS):
        raise ToolError(f"the exponent is too large (over {MAX_INT_BITS} bits of result)")
    if abs(exponent) > 1_000_000:
        raise ToolError("the exponent is too large")


def _call(node: ast.Call) -> Number:
    if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
        name = ast.unparse(node.func)
        raise ToolError(f"unknown function {name!r}; available: {', '.join(sorted(_FUNCTIONS))}")
    if node.keywords:
        raise ToolError("functions take positional arguments only")
    args = [_eval(a) for a in node.args]
    return _check(_FUNCTIONS[node.func.id](*args))


def _check(value: Any) -> Number:
    if isinstance(value, complex):
        raise ToolError("the result is a complex number")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ToolError("the result is too large")
    return value  # type: ignore[no-any-return]


def format_number(value: Number) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    if isinstance(value, float):
        return repr(value)
    return str(value)


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression exactly and return the number.

    Supports + - * / // % ** and parentheses, the constants pi, e, tau, and the functions sqrt,
    cbrt, exp, log(x, base), ln, log10, log2, sin, cos, tan, asin, acos, atan, atan2, sinh, cosh,
    tanh, degrees, radians, hypot, floor, ceil, trunc, round, abs, min, max, factorial, gcd, lcm.

    Args:
        expression: the arithmetic to evaluate, for example "(2 + 3) * 4 ** 2" or "sqrt(2)".
    """
    return format_number(evaluate(expression))


def make_calculator() -> FunctionTool:
    return FunctionTool(calculator)
