"""Render chat prompts with a model's own Jinja2 chat template, the way Hugging Face does.

The template comes from the model file (GGUF ``tokenizer.chat_template``) and is untrusted data,
so it runs in :class:`jinja2.sandbox.ImmutableSandboxedEnvironment` with what HF templates expect:
``raise_exception``, ``strftime_now``, a ``tojson`` that keeps non-ASCII text
(``ensure_ascii=False``, no HTML escaping), the loop-controls extension, a no-op
``{% generation %}`` block, and the variables ``messages``, ``tools``, ``add_generation_prompt``,
``bos_token``, ``eos_token``, ``enable_thinking`` (only when set, so ``enable_thinking is defined``
works) and any extra keyword arguments.

A model file without a template gets :data:`CHATML_TEMPLATE` (``<|im_start|>role\\n...<|im_end|>``),
which also lists tools Hermes/Qwen-style so tool calling keeps working.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from importlib import resources
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from openwen.errors import InvalidRequestError
from openwen.messages import Message


def _load_chatml() -> str:
    return (resources.files("openwen.formats") / "templates" / "chatml.jinja").read_text("utf-8")


CHATML_TEMPLATE: str = _load_chatml()
"""The fallback template for model files that carry none (ChatML, Hermes-style tools)."""


class TemplateRaisedError(Exception):
    """Raised by a template's own ``raise_exception(...)``."""


def _raise_exception(message: str) -> None:
    raise TemplateRaisedError(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    """HF's ``tojson``: plain ``json.dumps`` (no HTML escaping), non-ASCII kept by default."""
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


class _GenerationBlock(Extension):
    """HF's ``{% generation %}...{% endgeneration %}`` marks assistant text for training masks.

    Rendering a prompt needs only the body, so the block renders its content unchanged.
    """

    tags = {"generation"}

    def parse(self, parser: Any) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        call = self.call_method("_render_body")
        return nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    def _render_body(self, caller: Any) -> str:
        return str(caller())


def _make_environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        extensions=[loopcontrols, _GenerationBlock],
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


_ENV = _make_environment()


@lru_cache(maxsize=16)
def _compile(source: str) -> jinja2.Template:
    return _ENV.from_string(source)


def template_messages(messages: Sequence[Message] | Sequence[Mapping[str, Any]]) -> list[dict]:
    """Messages in the dict form templates expect. ``developer`` becomes ``system``.

    Chat templates predate OpenAI's ``developer`` role; it means the same as ``system``.
    """
    out: list[dict[str, Any]] = []
    for message in messages:
        data = message.to_template_dict() if isinstance(message, Message) else dict(message)
        if data.get("role") == "developer":
            data["role"] = "system"
        out.append(data)
    return out


class ChatTemplate:
    """A compiled chat template plus the special tokens it may reference."""

    def __init__(self, source: str | None, *, bos_token: str = "", eos_token: str = ""):
        self.source = source if source and source.strip() else CHATML_TEMPLATE
        self.is_fallback = self.source is CHATML_TEMPLATE
        self.bos_token = bos_token
        self.eos_token = eos_token

    def render(
        self,
        messages: Sequence[Message] | Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] = (),
        add_generation_prompt: bool = True,
        enable_thinking: bool | None = None,
        **extra: Any,
    ) -> str:
        """Render the prompt text. Any template failure becomes :class:`InvalidRequestError`."""
        context: dict[str, Any] = {
            "messages": template_messages(messages),
            "tools": [dict(t) for t in tools] if tools else None,
            "add_generation_prompt": add_generation_prompt,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            **extra,
        }
        if enable_thinking is not None:
            context["enable_thinking"] = enable_thinking
        try:
            template = _compile(self.source)
        except jinja2.TemplateSyntaxError as exc:
            raise InvalidRequestError(
                f"the model's chat template is invalid (line {exc.lineno}): {exc.message}",
                code="invalid_chat_template",
            ) from exc
        try:
            return template.render(**context)
        except TemplateRaisedError as exc:
            raise InvalidRequestError(
                f"the model's chat template rejected the conversation: {exc}", param="messages"
            ) from exc
        except Exception as exc:  # the template is untrusted code: report, never crash
            raise InvalidRequestError(
                f"the model's chat template failed to render: {type(exc).__name__}: {exc}",
                param="messages",
                code="chat_template_error",
            ) from exc
