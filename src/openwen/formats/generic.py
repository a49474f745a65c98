"""The template-driven chat format every family adapter builds on, and the generic adapter.

:class:`TemplateChatFormat` renders with the model's own chat template (ChatML when the model
file has none) and parses output with :class:`~openwen.formats.parser.TaggedOutputParser`. The
generic adapter (SmolLM2 and any family without its own adapter) is that class unchanged: text
passes through, and a leading ``<think>`` block or ``<tool_call>`` JSON/XML blocks are still
recognised, because small models fine-tuned on Qwen-style data emit them. A plain model never
writes these tags, so the parsing costs nothing there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from openwen.formats.base import OutputParser, RenderedPrompt
from openwen.formats.parser import THINK_OPEN, TaggedOutputParser
from openwen.formats.template import ChatTemplate
from openwen.formats.tool_prompt import inline_tools, template_handles_tools
from openwen.formats.toolcalls import tool_schemas
from openwen.messages import Message
from openwen.requests import Sampling

CHATML_END = "<|im_end|>"


@dataclass(frozen=True)
class ToolAwarePrompt(RenderedPrompt):
    """A rendered prompt that remembers the tools it offered, so the parser can type XML arguments
    by their JSON schemas."""

    tools: tuple[dict[str, Any], ...] = ()


def opens_thinking(text: str) -> bool:
    """True when the prompt ends inside an open ``<think>`` block: output starts as reasoning."""
    start = text.rfind(THINK_OPEN)
    return start >= 0 and not text[start + len(THINK_OPEN) :].strip()


class TemplateChatFormat:
    """Render with a chat template; parse ``<think>`` and ``<tool_call>`` output."""

    family = "generic"

    def __init__(
        self,
        chat_template: str | None,
        *,
        bos_token: str = "",
        eos_token: str = "",
        model_name: str | None = None,
    ):
        self.template = ChatTemplate(chat_template, bos_token=bos_token, eos_token=eos_token)
        self.model_name = model_name
        self.eos_token = eos_token
        source = self.template.source
        self.supports_thinking = "enable_thinking" in source or THINK_OPEN in source
        self.stop_strings: tuple[str, ...] = self._default_stop_strings()

    def _default_stop_strings(self) -> tuple[str, ...]:
        stops = [self.eos_token] if self.eos_token else []
        if "<|im_start|>" in self.template.source:
            stops.append(CHATML_END)
        return tuple(dict.fromkeys(stops))

    def thinking_switch(
        self, messages: Sequence[Message], enable_thinking: bool | None
    ) -> bool | None:
        """The ``enable_thinking`` value handed to the template (``None``: template default)."""
        return enable_thinking

    def render(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[dict[str, Any]] = (),
        enable_thinking: bool | None = None,
        add_generation_prompt: bool = True,
        **template_kwargs: Any,
    ) -> RenderedPrompt:
        switch = self.thinking_switch(messages, enable_thinking)
        offered = tuple(tools)
        if not template_handles_tools(self.template.source) and (
            tools or any(m.role == "tool" or m.tool_calls for m in messages)
        ):
            messages, tools = inline_tools(messages, tools), ()
        text = self.template.render(
            messages,
            tools=tools,
            add_generation_prompt=add_generation_prompt,
            enable_thinking=switch,
            **template_kwargs,
        )
        thinking_open = add_generation_prompt and opens_thinking(text)
        thinking = self._effective_thinking(switch, thinking_open)
        return ToolAwarePrompt(
            text=text,
            thinking_open=thinking_open,
            thinking=thinking,
            tools=tuple(dict(t) for t in offered),
        )

    def _effective_thinking(self, switch: bool | None, thinking_open: bool) -> bool | None:
        if thinking_open:
            return True
        if not self.supports_thinking:
            return None
        return True if switch is None else switch

    def parser(self, prompt: RenderedPrompt, *, tools_enabled: bool) -> OutputParser:
        return TaggedOutputParser(
            tools_enabled=tools_enabled,
            thinking_open=prompt.thinking_open,
            tool_schemas=tool_schemas(getattr(prompt, "tools", ())),
        )

    def sampling_defaults(self, thinking: bool | None) -> Sampling:
        """No family preset: every field ``None``, so the engine's defaults apply."""
        return Sampling()


class GenericFormat(TemplateChatFormat):
    """Any model family without its own adapter (SmolLM2, Llama, ...)."""

    family = "generic"
