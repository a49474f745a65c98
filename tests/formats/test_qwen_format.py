"""The Qwen adapter rendering real Qwen chat templates (see fixtures/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openwen.errors import InvalidRequestError
from openwen.formats import format_for
from openwen.formats.qwen import (
    NON_THINKING_SAMPLING,
    QWEN_STOP_STRINGS,
    THINKING_SAMPLING,
    QwenFormat,
    soft_switch,
)
from openwen.messages import Message, ToolCall, ToolCallEvent

FIXTURES = Path(__file__).parent / "fixtures"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "查询城市天气",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}


def qwen(name: str, arch: str = "qwen3") -> QwenFormat:
    source = (FIXTURES / name).read_text("utf-8")
    fmt = format_for(
        source, architecture=arch, bos_token="", eos_token="<|im_end|>", model_name=None
    )
    assert isinstance(fmt, QwenFormat)
    return fmt


def chat(*turns: tuple[str, str]) -> list[Message]:
    return [Message(role, content) for role, content in turns]  # type: ignore[arg-type]


# -- Qwen3 hybrid thinking (Qwen3-0.6B / Qwen3-8B template) ----------------------------------


def test_qwen3_default_thinks_and_leaves_think_to_the_model() -> None:
    rendered = qwen("qwen3-0.6b.jinja").render(chat(("system", "你是助手。"), ("user", "1+1=?")))
    assert rendered.text == (
        "<|im_start|>system\n你是助手。<|im_end|>\n"
        "<|im_start|>user\n1+1=?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert rendered.thinking is True and rendered.thinking_open is False


def test_qwen3_hard_switch_off_prefills_an_empty_think_block() -> None:
    rendered = qwen("qwen3-0.6b.jinja").render(chat(("user", "hi")), enable_thinking=False)
    assert rendered.text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert rendered.thinking is False and rendered.thinking_open is False


def test_qwen3_soft_switch_no_think() -> None:
    rendered = qwen("qwen3-0.6b.jinja").render(chat(("user", "天气怎么样？/no_think")))
    assert rendered.text.endswith(
        "天气怎么样？/no_think<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )
    assert rendered.thinking is False


def test_request_flag_wins_over_soft_switch() -> None:
    fmt = qwen("qwen3-0.6b.jinja")
    on = fmt.render(chat(("user", "简单回答 /no_think")), enable_thinking=True)
    assert on.text.endswith("<|im_start|>assistant\n") and on.thinking is True
    off = fmt.render(chat(("user", "think hard /think")), enable_thinking=False)
    assert off.text.endswith("<think>\n\n</think>\n\n") and off.thinking is False


def test_soft_switch_most_recent_instruction_wins() -> None:
    history = [
        Message("system", "Answer fast. /no_think"),
        Message("user", "a"),
        Message("assistant", "b"),
        Message("user", "c"),
    ]
    assert soft_switch(history) is False  # stateful: older switch still holds
    assert soft_switch([*history, Message("user", "now think /think")]) is True
    assert soft_switch([Message("user", "/think then /no_think")]) is False
    assert soft_switch([Message("user", "/no_think then /think")]) is True
    assert soft_switch([Message("user", "0x293 + 5593/no_think")]) is False
    assert soft_switch([Message("assistant", "/no_think"), Message("tool", "/no_think")]) is None
    assert soft_switch([Message("user", "see /thinking/notes.md")]) is None


def test_qwen3_history_with_reasoning_and_tool_calls() -> None:
    call = ToolCall(id="call_1", name="get_weather", arguments='{"city": "杭州"}')
    messages = [
        Message("user", "杭州天气？"),
        Message("assistant", "", reasoning="需要查天气。", tool_calls=(call,)),
        Message("tool", '{"temp": 21, "sky": "☀️"}', tool_call_id="call_1"),
    ]
    text = qwen("qwen3-0.6b.jinja").render(messages, tools=[WEATHER]).text
    assert '"description": "查询城市天气"' in text  # tojson keeps Chinese
    assert (
        "<|im_start|>assistant\n<think>\n需要查天气。\n</think>\n\n"
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "杭州"}}\n</tool_call>'
        "<|im_end|>\n<|im_start|>user\n<tool_response>\n"
        '{"temp": 21, "sky": "☀️"}\n</tool_response><|im_end|>\n<|im_start|>assistant\n'
    ) in text


# -- Qwen2.5 ---------------------------------------------------------------------------------


def test_qwen25_default_system_prompt_and_tools() -> None:
    fmt = qwen("qwen2.5-7b-instruct.jinja", arch="qwen2")
    rendered = fmt.render(chat(("user", "你好")), tools=[WEATHER])
    assert rendered.text.startswith(
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
        "\n\n# Tools\n"
    )
    assert rendered.thinking is None and not fmt.supports_thinking
    assert fmt.sampling_defaults(rendered.thinking) == NON_THINKING_SAMPLING


# -- Qwen3.5: the generation prompt opens <think>, XML tool calls -----------------------------


def test_qwen35_opens_think_in_the_prompt() -> None:
    fmt = qwen("qwen3.5-4b.jinja", arch="qwen35")
    rendered = fmt.render(chat(("user", "写一首诗")))
    assert rendered.text.endswith("<|im_start|>assistant\n<think>\n")
    assert rendered.thinking_open is True and rendered.thinking is True
    closed = fmt.render(chat(("user", "写一首诗")), enable_thinking=False)
    assert closed.text.endswith("<think>\n\n</think>\n\n") and not closed.thinking_open


def test_qwen35_renders_xml_tool_calls_in_history() -> None:
    call = ToolCall(id="call_2", name="get_weather", arguments='{"city": "東京", "days": 3}')
    messages = [
        Message("user", "東京は？"),
        Message("assistant", "", tool_calls=(call,)),
        Message("tool", "晴れ 🌤", tool_call_id="call_2"),
    ]
    text = qwen("qwen3.5-4b.jinja", arch="qwen35").render(messages, tools=[WEATHER]).text
    assert (
        "<tool_call>\n<function=get_weather>\n<parameter=city>\n東京\n</parameter>\n"
        "<parameter=days>\n3\n</parameter>\n</function>\n</tool_call><|im_end|>"
    ) in text
    assert "<tool_response>\n晴れ 🌤\n</tool_response>" in text


def test_qwen35_raise_exception_is_a_clear_400() -> None:
    fmt = qwen("qwen3.5-4b.jinja", arch="qwen35")
    with pytest.raises(InvalidRequestError, match="System message must be at the beginning"):
        fmt.render(chat(("user", "a"), ("system", "late system")))
    with pytest.raises(InvalidRequestError, match="No user query found"):
        fmt.render(chat(("system", "only a system prompt")))


def test_qwen35_prompt_and_parser_end_to_end() -> None:
    """Render with tools, then parse an answer that starts inside the opened <think>."""
    fmt = qwen("qwen3.5-4b.jinja", arch="qwen35")
    rendered = fmt.render(chat(("user", "杭州明后两天天气？")), tools=[WEATHER])
    parser = fmt.parser(rendered, tools_enabled=True)
    answer = (
        "查两天的天气。\n</think>\n\n<tool_call>\n<function=get_weather>\n<parameter=city>\n杭州\n"
        "</parameter>\n<parameter=days>\n2\n</parameter>\n</function>\n</tool_call>"
    )
    events = [e for ch in answer for e in parser.feed(ch)] + parser.finish()
    calls = [e for e in events if isinstance(e, ToolCallEvent)]
    assert len(calls) == 1 and parser.tool_call_count == 1
    assert json.loads(calls[0].call.arguments) == {"city": "杭州", "days": 2}  # typed by schema
    assert "".join(e.text for e in events if e.kind == "reasoning") == "查两天的天气。"


# -- Qwen3-Coder -----------------------------------------------------------------------------


def test_qwen3_coder_lists_tools_in_xml() -> None:
    fmt = qwen("qwen3-coder.jinja", arch="qwen3moe")
    rendered = fmt.render(chat(("user", "list files")), tools=[WEATHER])
    assert rendered.text.startswith(
        "<|im_start|>system\nYou are Qwen, a helpful AI assistant that can interact with a "
        "computer to solve tasks.\n\n# Tools\n"
    )
    assert "<function>\n<name>get_weather</name>\n<description>查询城市天气</description>" in (
        rendered.text
    )
    assert rendered.text.endswith("<|im_start|>user\nlist files<|im_end|>\n<|im_start|>assistant\n")
    assert rendered.thinking is None and rendered.thinking_open is False


# -- presets ---------------------------------------------------------------------------------


def test_qwen_sampling_presets_and_stop_strings() -> None:
    fmt = qwen("qwen3-0.6b.jinja")
    assert fmt.sampling_defaults(True) == THINKING_SAMPLING
    assert (THINKING_SAMPLING.temperature, THINKING_SAMPLING.top_p) == (0.6, 0.95)
    assert (THINKING_SAMPLING.top_k, THINKING_SAMPLING.min_p) == (20, 0.0)
    assert fmt.sampling_defaults(False) == NON_THINKING_SAMPLING
    assert (NON_THINKING_SAMPLING.temperature, NON_THINKING_SAMPLING.top_p) == (0.7, 0.8)
    assert (NON_THINKING_SAMPLING.top_k, NON_THINKING_SAMPLING.min_p) == (20, 0.0)
    assert fmt.stop_strings == QWEN_STOP_STRINGS == ("<|im_end|>", "<|endoftext|>")
    assert fmt.family == "qwen"
