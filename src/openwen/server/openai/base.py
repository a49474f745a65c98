"""The lenient base model of every OpenAI request object, and validation errors as ``param`` paths.

OpenAI clients send fields a local server may not know (new API fields, vendor extensions). They
are ignored and logged, never an error: each distinct set of ignored fields is logged once at INFO
(so a 10,000-message request does not log 10,000 lines), every occurrence at DEBUG.
"""

from __future__ import annotations

import logging
import types
import typing
from collections.abc import Sequence
from functools import cache, lru_cache
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from openwen.errors import InvalidRequestError

log = logging.getLogger("openwen.server.openai")

M = TypeVar("M", bound=BaseModel)


class Lenient(BaseModel):
    """Unknown fields are dropped (and logged) instead of rejected."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _note_unknown(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = data.keys() - _known_names(cls)
            if unknown:
                _log_ignored(cls.__name__, frozenset(map(str, unknown)))
        return data


@cache
def _known_names(cls: type[BaseModel]) -> frozenset[str]:
    names = set(cls.model_fields)
    names.update(f.alias for f in cls.model_fields.values() if f.alias)
    return frozenset(names)


@lru_cache(maxsize=256)
def _logged_once(where: str, fields: frozenset[str]) -> None:
    log.info("ignoring unknown field(s) in %s: %s", where, ", ".join(sorted(fields)))


def _log_ignored(where: str, fields: frozenset[str]) -> None:
    log.debug("ignoring unknown field(s) in %s: %s", where, ", ".join(sorted(fields)))
    _logged_once(where, fields)


def parse_request(model: type[M], body: bytes) -> M:
    """Validate a JSON body; any problem is an :class:`InvalidRequestError` naming the param."""
    if not body.strip():
        raise InvalidRequestError("the request body is empty; send a JSON object")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise validation_error(model, exc.errors(include_url=False)) from None


def validation_error(model: type[BaseModel], errors: Sequence[Any]) -> InvalidRequestError:
    """One clear 400 from pydantic errors, naming the param of the most specific problem.

    A value that fits no member of a union yields one error per member; the deepest one is the
    informative one (``content[1]: image parts are not supported`` beats ``content: not a
    string``); members failing at the same depth are merged ("a valid string, or a valid list").
    """
    first = errors[0]
    kind = first.get("type", "")
    if kind == "json_invalid":
        detail = (first.get("ctx") or {}).get("error") or first.get("msg")
        return InvalidRequestError(f"the request body is not valid JSON: {detail}",
                                   code="invalid_json")
    if kind == "model_type" and not first.get("loc"):
        return InvalidRequestError("the request body must be a JSON object", code="invalid_json")
    located = [(param_path(model, e.get("loc", ())), e) for e in errors]
    depth = max(len(e.get("loc", ())) for _, e in located)
    param, chosen = next((p, e) for p, e in located if len(e.get("loc", ())) == depth)
    same = [e for p, e in located if p == param]
    if all(e.get("type", "").endswith("_type") for e in same) and len(same) > 1:
        message = "Input should be " + ", or ".join(
            _clean_message(e["msg"]).removeprefix("Input should be ") for e in same)
    else:
        message = _clean_message(chosen.get("msg", "invalid value"))
    return InvalidRequestError(f"{param}: {message}" if param else message, param=param or None,
                               code=_code_for(chosen.get("type", "")))


def _clean_message(msg: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix):]
    return msg


def _code_for(kind: str) -> str:
    if kind == "missing":
        return "missing_required_parameter"
    if kind.endswith(("_type", "_parsing")):
        return "invalid_type"
    return "invalid_value"


def param_path(model: type[BaseModel], loc: Sequence[int | str]) -> str:
    """``('messages', 3, 'role')`` -> ``messages[3].role``; union-member tags are dropped.

    Pydantic puts the name of the union member it tried into ``loc`` (``'str'``,
    ``'list[ContentPart]'``); walking the model's fields tells real field names from those tags.
    """
    out = ""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        fields = getattr(current, "model_fields", None)
        if fields is None:
            if isinstance(current, dict):  # free-form object (dict[str, Any])
                out += f".{part}" if out else part
            continue
        field = fields.get(part) or next(
            (f for f in fields.values() if f.alias == part), None)
        if field is None:
            continue  # a union tag, not a field
        out += f".{part}" if out else part
        current = _inner_model(field.annotation)
    return out


def _inner_model(annotation: Any) -> Any:
    """The pydantic model (or ``dict``) nested somewhere in a field's annotation, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is dict:
        return {}
    if origin in (typing.Union, types.UnionType, list, tuple, typing.Annotated) or origin:
        for arg in typing.get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None
