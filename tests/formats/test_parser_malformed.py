"""Partial and malformed tags become text (verbatim), never an exception."""

from __future__ import annotations

import pytest

from openwen.formats.parser import TaggedOutputParser, partial_tag_length
from openwen.messages import ReasoningDelta, TextDelta, ToolCallEvent


def parse_all(text: str, *, thinking_open: bool = False) -> tuple[list, TaggedOutputParser]:
    """Parse ``text`` fed whole and fed one character at a time; both must agree."""
    results = []
    for chunks in ([text], list(text)):
        parser = TaggedOutputParser(tools_enabled=True, thinking_open=thinking_open)
        events = [e for chunk in chunks for e in parser.feed(chunk)] + parser.finish()
        results.append((merge(events), parser))
    assert _comparable(results[0][0]) == _comparable(results[1][0])
    return results[0]


def _comparable(events: list) -> list:
    """Tool call ids are random: compare calls by index, name and arguments."""
    return [
        (e.index, e.call.name, e.call.arguments) if isinstance(e, ToolCallEvent) else e
        for e in events
    ]


def merge(events: list) -> list:
    out: list = []
    for event in events:
        if out and type(out[-1]) is type(event) and not isinstance(event, ToolCallEvent):
            out[-1] = type(event)(out[-1].text + event.text)
        else:
            out.append(event)
    return out


@pytest.mark.parametrize(
    "text",
    [
        "<tool_call>{not json</tool_call>",
        'Sure.<tool_call>\n{"arguments": {"x": 1}}\n</tool_call>',  # no name
        '<tool_call>\n{"name": "f", "arguments": [1, 2]}\n</tool_call>',  # arguments not an object
        '<tool_call>\n{"name": "f", "arguments": "{broken"}\n</tool_call>',
        "<tool_call>\n<function=f>\n<parameter=a>\n1\n</function>\n</tool_call>",  # unclosed param
        "<tool_call>\n<function=f>\nstray text\n</function>\n</tool_call>",
        "<tool_call>\n<function=>\n</function>\n</tool_call>",
        "<tool_call></tool_call>",
    ],
)
def test_malformed_tool_calls_are_kept_verbatim(text: str) -> None:
    events, parser = parse_all(text)
    assert events == [TextDelta(text)]
    assert parser.tool_call_count == 0


def test_newlines_before_a_malformed_call_are_kept() -> None:
    events, _ = parse_all("答案如下\n\n<tool_call>{oops}</tool_call>")
    assert events == [TextDelta("答案如下\n\n<tool_call>{oops}</tool_call>")]


def test_malformed_call_between_good_ones_keeps_the_order() -> None:
    text = (
        '<tool_call>\n{"name": "a", "arguments": {}}\n</tool_call>\n'
        "<tool_call>{bad</tool_call>\n"
        '<tool_call>\n{"name": "b", "arguments": {"k": "v"}}\n</tool_call>'
    )
    events, parser = parse_all(text)
    assert [type(e) for e in events] == [ToolCallEvent, TextDelta, ToolCallEvent]
    assert events[1].text == "<tool_call>{bad</tool_call>"
    assert [e.index for e in events if isinstance(e, ToolCallEvent)] == [0, 1]
    assert parser.tool_call_count == 2


def test_unclosed_think_is_all_reasoning() -> None:
    events, _ = parse_all("<think>\n让我想想……🤔 还没想完")
    assert events == [ReasoningDelta("让我想想……🤔 还没想完")]


def test_unclosed_think_in_an_open_prompt_is_all_reasoning() -> None:
    events, _ = parse_all("still going\n", thinking_open=True)
    assert events == [ReasoningDelta("still going")]


@pytest.mark.parametrize("tail", ["<", "<tool_c", "<tool_call", "<thi"])
def test_partial_tag_at_the_end_is_text(tail: str) -> None:
    events, _ = parse_all("Hello " + tail)
    assert events == [TextDelta("Hello " + tail)]


def test_partial_think_close_at_the_end_is_reasoning() -> None:
    events, _ = parse_all("<think>abc</thi")
    assert events == [ReasoningDelta("abc</thi")]


def test_unclosed_tool_call_with_prose_is_released_early() -> None:
    parser = TaggedOutputParser(tools_enabled=True)
    events = parser.feed("<tool_call> is the tag Qwen uses for calls")
    assert events == [TextDelta("<tool_call> is the tag Qwen uses for calls")]


def test_unclosed_tool_call_with_complete_json_is_a_call() -> None:
    """Generation may stop (stop string) right before ``</tool_call>``: the call still counts."""
    events, parser = parse_all('<tool_call>\n{"name": "f", "arguments": {"q": "🐼"}}\n')
    assert len(events) == 1 and isinstance(events[0], ToolCallEvent)
    assert events[0].call.arguments == '{"q": "🐼"}'
    assert parser.tool_call_count == 1


def test_unclosed_tool_call_with_truncated_json_is_text() -> None:
    events, parser = parse_all('<tool_call>\n{"name": "f", "argu')
    assert events == [TextDelta('<tool_call>\n{"name": "f", "argu')]
    assert parser.tool_call_count == 0


def test_partial_tag_length() -> None:
    assert partial_tag_length("abc<tool_c", ("<tool_call>",)) == 7
    assert partial_tag_length("abc<", ("<tool_call>", "</think>")) == 1
    assert partial_tag_length("abc</", ("<tool_call>", "</think>")) == 2
    assert partial_tag_length("<tool_call>", ("<tool_call>",)) == 0  # complete, not partial
    assert partial_tag_length("abc", ("<tool_call>",)) == 0
