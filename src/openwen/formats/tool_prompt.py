"""Tools for chat templates that know nothing of them (SmolLM2, many small models).

Such a template drops the ``tools`` variable, assistant tool calls and maybe the ``tool`` role. We
describe the tools in the system message in the widely trained Hermes/Qwen2.5 form, write earlier
tool calls into the assistant text as ``<tool_call>`` JSON blocks, and hand tool results back as
user
turns wrapped in ``<tool_response>`` — the same shapes the output parser reads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from openwen.messages import Message

TOOLS_INSTRUCTIONS = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
    "{tools}\n</tools>\n\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{{"name": <function-name>, "arguments": <args-json-object>}}\n</tool_call>'
)


def template_handles_tools(source: str) -> bool:
    return "tools" in source and "tool_calls" in source


def inline_tools(messages: Sequence[Message], tools: Sequence[dict[str, Any]]) -> list[Message]:
    """Rewrite messages so a tool-unaware template still shows tools, calls and results."""
    out: list[Message] = []
    if tools:
        listing = "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
        block = TOOLS_INSTRUCTIONS.format(tools=listing)
        if messages and messages[0].role in ("system", "developer"):
            first = messages[0]
            out.append(Message("system", f"{first.content or ''}\n\n{block}".strip()))
            messages = messages[1:]
        else:
            out.append(Message("system", block))
    for message in messages:
        out.append(_inline(message))
    return out


def _inline(message: Message) -> Message:
    if message.role == "assistant" and message.tool_calls:
        calls = "\n".join(
            "<tool_call>\n" + json.dumps({"name": c.name, "arguments": _args(c.arguments)},
                                         ensure_ascii=False) + "\n</tool_call>"
            for c in message.tool_calls
        )
        text = f"{message.content}\n{calls}" if message.content else calls
        return Message("assistant", text, reasoning=message.reasoning)
    if message.role == "tool":
        return Message("user", f"<tool_response>\n{message.content or ''}\n</tool_response>")
    return message


def _args(arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments
