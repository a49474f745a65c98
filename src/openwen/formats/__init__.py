"""Chat formats: render prompts with a model's chat template, parse its output incrementally.

Typical use by an engine::

    fmt = format_for(template, architecture=arch, bos_token=bos, eos_token=eos, model_name=name)
    rendered = fmt.render(messages, tools=tools, enable_thinking=thinking)
    parser = fmt.parser(rendered, tools_enabled=bool(tools))
    detok = IncrementalDetokenizer(piece_bytes)
    for token in tokens:
        events = parser.feed(detok.add(token))
    events = parser.feed(detok.flush()) + parser.finish()
"""

from openwen.formats.base import ChatFormat, OutputParser, ParsedEvent, RenderedPrompt
from openwen.formats.detokenize import IncrementalDetokenizer
from openwen.formats.generic import GenericFormat, TemplateChatFormat, ToolAwarePrompt
from openwen.formats.parser import TaggedOutputParser
from openwen.formats.qwen import NON_THINKING_SAMPLING, THINKING_SAMPLING, QwenFormat
from openwen.formats.registry import format_for
from openwen.formats.template import CHATML_TEMPLATE, ChatTemplate

__all__ = [
    "CHATML_TEMPLATE",
    "NON_THINKING_SAMPLING",
    "THINKING_SAMPLING",
    "ChatFormat",
    "ChatTemplate",
    "GenericFormat",
    "IncrementalDetokenizer",
    "OutputParser",
    "ParsedEvent",
    "QwenFormat",
    "RenderedPrompt",
    "TaggedOutputParser",
    "TemplateChatFormat",
    "ToolAwarePrompt",
    "format_for",
]
