"""Render a conversation branch as Markdown (for reading or sharing, not for re-import)."""

from __future__ import annotations

import re

from openwen.storage.records import ConversationRecord, MessageRecord

HEADINGS = {
    "system": "System",
    "developer": "Developer",
    "user": "User",
    "assistant": "Assistant",
    "tool": "Tool result",
}


def fence(text: str, language: str = "") -> str:
    """A fenced code block that ``text`` cannot close early."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{language}\n{text}\n{ticks}"


def render_markdown(conversation: ConversationRecord, path: list[MessageRecord]) -> str:
    parts = [f"# {conversation.title}"]
    model = conversation.settings.get("model")
    facts = [f"created {conversation.created_at:%Y-%m-%d %H:%M} UTC"]
    if model:
        facts.append(f"model {model}")
    parts.append("*" + ", ".join(facts) + "*")
    if conversation.system_prompt:
        parts.append("## System prompt\n\n" + fence(conversation.system_prompt))
    parts.extend(render_message(m) for m in path)
    return "\n\n".join(parts) + "\n"


def render_message(message: MessageRecord) -> str:
    heading = HEADINGS.get(message.role, message.role.title())
    if message.role == "tool" and message.tool_call_id:
        heading += f" (`{message.tool_call_id}`)"
    if message.status != "complete":
        heading += f" *({message.status})*"
    parts = [f"## {heading}"]
    if message.reasoning:
        parts.append(
            f"<details>\n<summary>Thinking</summary>\n\n{message.reasoning.strip()}\n\n</details>"
        )
    if message.content:
        body = fence(message.content) if message.role == "tool" else message.content.strip()
        parts.append(body)
    for call in message.tool_calls:
        parts.append(
            f"**Tool call** `{call.name}` (`{call.id}`)\n\n" + fence(call.arguments, "json")
        )
    return "\n\n".join(parts)
