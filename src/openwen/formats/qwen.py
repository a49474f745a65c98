"""The Qwen family adapter (Qwen2, Qwen2.5, QwQ, Qwen3, Qwen3-Coder, Qwen3.5 and their MoE kin).

Thinking on/off, in order of precedence:

1. the request's flag (``enable_thinking`` / ``ChatRequest.thinking``) when it is set: it wins over
   anything written in the messages;
2. otherwise Qwen3's soft switches: the most recent ``/think`` or ``/no_think`` written in a user
   or system message (the newest message holding one decides; within it the last one wins), as
   the Qwen3 model card describes ("the model follows the most recent instruction in multi-turn
   conversations");
3. otherwise the template's default (thinking on for hybrid Qwen3 templates).

The chosen value is passed to the template as ``enable_thinking``, so ``/no_think`` gets the same
empty ``<think></think>`` prefill as the hard switch. Messages are never edited: the switch text
stays where the user wrote it, keeping the prompt byte-stable.

Output parsing (``<think>`` and ``<tool_call>`` in JSON and XML forms) is shared with the generic
adapter: see :mod:`openwen.formats.parser`. Sampling presets follow the Qwen3 model cards.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from openwen.formats.generic import TemplateChatFormat
from openwen.messages import Message
from openwen.requests import Sampling

QWEN_STOP_STRINGS = ("<|im_end|>", "<|endoftext|>")

THINKING_SAMPLING = Sampling(temperature=0.6, top_p=0.95, top_k=20, min_p=0.0)
"""Qwen3 model card, thinking mode: Temperature=0.6, TopP=0.95, TopK=20, MinP=0."""

NON_THINKING_SAMPLING = Sampling(temperature=0.7, top_p=0.8, top_k=20, min_p=0.0)
"""Qwen3 model card, non-thinking mode: Temperature=0.7, TopP=0.8, TopK=20, MinP=0."""

_SOFT_SWITCH = re.compile(r"/(no_)?think(?![\w/])")
_SWITCH_ROLES = ("user", "system", "developer")


def soft_switch(messages: Sequence[Message]) -> bool | None:
    """The thinking mode asked for by the most recent ``/think`` or ``/no_think``, if any."""
    for message in reversed(messages):
        if message.role not in _SWITCH_ROLES or not message.content:
            continue
        found = _SOFT_SWITCH.findall(message.content)
        if found:
            return found[-1] != "no_"
    return None


class QwenFormat(TemplateChatFormat):
    """Qwen chat format: model template, soft switches, Qwen sampling presets and stop strings."""

    family = "qwen"

    def _default_stop_strings(self) -> tuple[str, ...]:
        return QWEN_STOP_STRINGS

    def thinking_switch(
        self, messages: Sequence[Message], enable_thinking: bool | None
    ) -> bool | None:
        if enable_thinking is not None:
            return enable_thinking
        if not self.supports_thinking:
            return None
        return soft_switch(messages)

    def sampling_defaults(self, thinking: bool | None) -> Sampling:
        """Thinking preset when thinking is on; the non-thinking preset otherwise, also for models
        that cannot think (Qwen3-Instruct-2507's card gives the same values; Qwen2.5's
        generation_config also sets temperature 0.7, top_p 0.8, top_k 20)."""
        return THINKING_SAMPLING if thinking else NON_THINKING_SAMPLING
