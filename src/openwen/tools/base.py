"""The tool protocol: a typed, documented Python function becomes a tool a model can call.

:meth:`FunctionTool` (or the :func:`tool` decorator) turns the signature's type hints into a JSON
schema with pydantic, the docstring's first part into the description and its ``Args:`` section
into parameter descriptions. :meth:`Tool.call` parses and validates the model's JSON arguments
before anything runs; every failure (invalid JSON, wrong types, missing fields, the tool raised or
timed out) comes back as an error :class:`ToolOutput` the model reads, never as an exception.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from openwen.messages import ToolImage

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_RESULT_CHARS = 20_000
_SECTION = re.compile(r"^(Args|Arguments|Parameters|Params|Returns?|Raises|Yields?|Examples?|"
                      r"Notes?|See Also):\s*$")
_ARG_SECTIONS = ("Args", "Arguments", "Parameters", "Params")
_ARG_LINE = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


class ToolError(Exception):
    """Raised by a tool for a failure the model should read as a plain message (no traceback)."""


class ToolArgumentError(ToolError):
    """The model's arguments are not valid JSON or do not match the tool's schema."""


@dataclass(frozen=True)
class ToolOutput:
    """What a tool call produced. ``text`` goes to the model; ``error`` is set on failure."""

    text: str
    error: str | None = None
    images: tuple[ToolImage, ...] = ()

    @property
    def is_error(self) -> bool:
        return self.error is not None


class Tool:
    """Something a model can call. Subclasses implement :meth:`invoke` (and may refine
    :meth:`validate`); callers use :meth:`call`, which never raises for a tool's failure."""

    def __init__(self, name: str, description: str, parameters: dict[str, Any], *,
                 side_effects: bool = False, source: str = "builtin",
                 timeout: float | None = None):
        if not NAME_PATTERN.match(name):
            raise ValueError(f"tool name {name!r} must match {NAME_PATTERN.pattern}")
        self.name = name
        self.description = description
        self.parameters = parameters
        self.side_effects = side_effects
        self.source = source
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} ({self.source})>"

    def definition(self) -> dict[str, Any]:
        """The OpenAI tool definition (``{"type": "function", "function": {...}}``)."""
        return {"type": "function", "function": {
            "name": self.name, "description": self.description, "parameters": self.parameters}}

    def validate(self, args: dict[str, Any]) -> dict[str, Any]:
        """Check arguments against the schema; raise :class:`ToolArgumentError` when they fail."""
        return args

    async def invoke(self, args: dict[str, Any]) -> Any:
        raise NotImplementedError

    async def call(self, arguments: str | Mapping[str, Any] | None, *,
                   timeout: float | None = None) -> ToolOutput:
        """Parse, validate and run. Errors of every kind become an error :class:`ToolOutput`."""
        try:
            args = self.validate(parse_arguments(arguments))
        except ToolArgumentError as exc:
            return ToolOutput(f"Error: invalid arguments for {self.name}: {exc}. "
                              f"Expected arguments: {schema_hint(self.parameters)}",
                              error="invalid_arguments")
        limit = self.timeout or timeout
        try:
            async with asyncio.timeout(limit):
                result = await self.invoke(args)
        except TimeoutError:
            return ToolOutput(f"Error: {self.name} did not finish within {limit:g} seconds",
                              error="timeout")
        except ToolError as exc:
            return ToolOutput(f"Error: {exc}", error="tool_error")
        except Exception as exc:  # a tool's bug must not end the conversation
            log.warning("tool %s failed", self.name, exc_info=True)
            return ToolOutput(f"Error: {self.name} failed: {type(exc).__name__}: {exc}",
                              error="tool_failed")
        return to_output(result)


class FunctionTool(Tool):
    """A tool made from a Python function (sync functions run in a worker thread)."""

    def __init__(self, func: Callable[..., Any], *, name: str | None = None,
                 description: str | None = None, side_effects: bool = False,
                 source: str = "builtin", timeout: float | None = None):
        summary, arg_docs = parse_docstring(inspect.getdoc(func) or "")
        self.func = func
        self.args_model = args_model(func, arg_docs)
        super().__init__(name or func.__name__, description or summary or name or func.__name__,
                         clean_schema(self.args_model.model_json_schema()),
                         side_effects=side_effects, source=source, timeout=timeout)

    def validate(self, args: dict[str, Any]) -> dict[str, Any]:
        try:
            model = self.args_model.model_validate(args)
        except ValidationError as exc:
            raise ToolArgumentError(describe_validation_error(exc)) from None
        return {name: getattr(model, name) for name in type(model).model_fields}

    async def invoke(self, args: dict[str, Any]) -> Any:
        if inspect.iscoroutinefunction(self.func):
            return await self.func(**args)
        return await asyncio.to_thread(self.func, **args)


def tool(func: Callable[..., Any] | None = None, *, name: str | None = None,
         side_effects: bool = False, timeout: float | None = None) -> Any:
    """Decorator: ``@tool`` or ``@tool(side_effects=True)`` makes a :class:`FunctionTool`."""

    def wrap(f: Callable[..., Any]) -> FunctionTool:
        return FunctionTool(f, name=name, side_effects=side_effects, timeout=timeout)

    return wrap(func) if func is not None else wrap


# -- schema from a signature --------------------------------------------------------------------


def args_model(func: Callable[..., Any], arg_docs: Mapping[str, str]) -> type[BaseModel]:
    """A pydantic model of the function's parameters (every one must have a type hint)."""
    hints = typing.get_type_hints(func, include_extras=True)
    fields: dict[str, Any] = {}
    for param in inspect.signature(func).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"{func.__name__}: *args and **kwargs cannot be tool parameters")
        if param.name not in hints:
            raise TypeError(f"{func.__name__}: parameter {param.name!r} needs a type hint")
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (hints[param.name],
                              Field(default, description=arg_docs.get(param.name)))
    return create_model(f"{func.__name__}_arguments", __config__=ConfigDict(extra="forbid"),
                        **fields)


def clean_schema(node: Any, *, in_properties: bool = False) -> Any:
    """Drop pydantic's generated ``title`` keys (noise in a small model's prompt)."""
    if isinstance(node, dict):
        return {k: clean_schema(v, in_properties=k in ("properties", "$defs") and not in_properties)
                for k, v in node.items() if in_properties or k != "title"}
    if isinstance(node, list):
        return [clean_schema(v) for v in node]
    return node


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into its description and ``Args:`` entries."""
    summary: list[str] = []
    args: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    arg_indent: int | None = None
    for line in inspect.cleandoc(doc).splitlines():
        stripped = line.strip()
        if match := _SECTION.match(stripped):
            section, current, arg_indent = match.group(1), None, None
            continue
        if section is None:
            summary.append(line)
            continue
        if section not in _ARG_SECTIONS or not stripped:
            continue
        indent = len(line) - len(line.lstrip())
        entry = _ARG_LINE.match(stripped)
        if entry and (arg_indent is None or indent <= arg_indent):
            current, arg_indent = entry.group(1), indent
            args[current] = entry.group(2).strip()
        elif current is not None:
            args[current] = f"{args[current]} {stripped}".strip()
    paragraphs = "\n".join(summary).strip().split("\n\n")
    text = "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())
    return text, args


# -- arguments and results ------------------------------------------------------------------------


def parse_arguments(arguments: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """The model's arguments as a dict; empty text means no arguments."""
    if arguments is None:
        return {}
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except ValueError as exc:
        raise ToolArgumentError(f"the arguments are not valid JSON ({exc.args[0]})") from None
    if not isinstance(value, dict):
        raise ToolArgumentError(f"the arguments must be a JSON object, not {type(value).__name__}")
    return value


def describe_validation_error(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        if err["type"] == "extra_forbidden":
            problems.append(f"unexpected argument '{where}'")
        elif err["type"] == "missing":
            problems.append(f"'{where}' is required")
        else:
            problems.append(f"'{where}': {err['msg']}")
    return "; ".join(problems)


def schema_hint(schema: Mapping[str, Any]) -> str:
    """A compact ``{"name": type, ...}`` reminder of what a tool takes."""
    props = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    parts = []
    for name, prop in props.items():
        kind = prop.get("type") or "/".join(
            str(o.get("type", "value")) for o in prop.get("anyOf", ())) or "value"
        parts.append(f'"{name}": {kind}{"" if name in required else " (optional)"}')
    return "{" + ", ".join(parts) + "}"


def to_output(result: Any) -> ToolOutput:
    """A tool's return value as text for the model (JSON for structured values), size-capped."""
    if isinstance(result, ToolOutput):
        return ToolOutput(truncate(result.text), result.error, result.images)
    if result is None:
        return ToolOutput("(no output)")
    if isinstance(result, str):
        return ToolOutput(truncate(result))
    return ToolOutput(truncate(json.dumps(result, ensure_ascii=False, default=str)))


def truncate(text: str, limit: int = MAX_RESULT_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... truncated: {len(text) - limit} more characters]"
