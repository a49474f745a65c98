"""The incremental output parser on realistic Qwen answers, split at every possible position."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from openwen.formats.detokenize import IncrementalDetokenizer
from openwen.formats.parser import TaggedOutputParser
from openwen.messages import ReasoningDelta, TextDelta, ToolCallEvent

OUTPUTS = Path(__file__).parent / "fixtures" / "outputs"

FORECAST_TOOL = {
    "type": "function",
    "function": {
        "name": "get_forecast",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "include_hourly": {"type": "boolean"},
                "options": {"type": "object"},
            },
        },
    },
}
SCHEMAS = {"get_forecast": FORECAST_TOOL["function"]["parameters"]}


def call(name: str, **args: Any) -> tuple[str, str, dict[str, Any]]:
    return ("tool_call", name, args)


# file -> (starts inside <think>, expected merged events)
SAMPLES: dict[str, tuple[bool, list[tuple[Any, ...]]]] = {
    "qwen3_think_json_tool.txt": (
        False,
        [
            (
                "reasoning",
                "用户想知道杭州今天的天气。我应该调用 get_weather 工具，参数 city 为 "
                '"杭州"，单位用摄氏度。🌦️',
            ),
            ("text", "我来帮你查一下杭州的天气。"),
            call("get_weather", city="杭州", unit="celsius"),
        ],
    ),
    "qwen3_parallel_tools.txt": (
        False,
        [
            (
                "reasoning",
                "The user asks for the weather in two cities, so I will call get_weather twice, "
                "once for 北京 and once for 上海.",
            ),
            call("get_weather", city="北京"),
            call("get_weather", city="上海", unit="celsius"),
        ],
    ),
    "qwen3_empty_think.txt": (
        False,
        [("text", "你好！👋 我是通义千问，很高兴为你服务。\n\n有什么可以帮你的吗？😊")],
    ),
    "qwen3_no_think_answer.txt": (
        False,
        [
            (
                "text",
                "好的，下面是一首关于春天的短诗 🌸：\n\n春风拂面柳丝长，\n燕子归来筑新房。\n"
                "桃花笑映清溪水，\n一缕芬芳满故乡。",
            )
        ],
    ),
    "qwen35_open_think_xml_tool.txt": (
        True,
        [
            (
                "reasoning",
                "The user wants a 3-day forecast for Tokyo (東京) in metric units, without hourly "
                "data. I will call get_forecast. 🗾",
            ),
            call(
                "get_forecast",
                city="東京",
                days=3,
                include_hourly=False,
                options={"units": "metric", "lang": "ja"},
            ),
        ],
    ),
    "qwen3coder_xml_multiline.txt": (
        False,
        [
            ("text", "I will create the file with a small greeting program."),
            call(
                "write_file",
                path="hello.py",
                content='def main():\n    print("你好，世界 👋")\n\n\nif __name__ == "__main__":\n'
                "    main()",
            ),
        ],
    ),
}


def new_parser(thinking_open: bool, tools: bool = True) -> TaggedOutputParser:
    return TaggedOutputParser(
        tools_enabled=tools, thinking_open=thinking_open, tool_schemas=SCHEMAS
    )


def normalise(events: list[Any]) -> list[tuple[Any, ...]]:
    """Merge consecutive text/reasoning pieces; tool calls as (name, parsed args); check indexes."""
    out: list[tuple[Any, ...]] = []
    calls = 0
    for event in events:
        if isinstance(event, ToolCallEvent):
            assert event.index == calls
            assert event.call.id.startswith("call_") and len(event.call.id) > 10
            out.append(("tool_call", event.call.name, json.loads(event.call.arguments)))
            calls += 1
            continue
        assert isinstance(event, TextDelta | ReasoningDelta)
        assert event.text, "no empty deltas"
        if out and out[-1][0] == event.kind:
            out[-1] = (event.kind, out[-1][1] + event.text)
        else:
            out.append((event.kind, event.text))
    return out


def run(chunks: list[str], thinking_open: bool, tools: bool = True) -> list[Any]:
    parser = new_parser(thinking_open, tools)
    events: list[Any] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    events.extend(parser.finish())
    return events


def load(name: str) -> str:
    return (OUTPUTS / name).read_text("utf-8")


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_whole_sample_gives_expected_events(name: str) -> None:
    thinking_open, expected = SAMPLES[name]
    assert normalise(run([load(name)], thinking_open)) == expected


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_split_position_gives_same_events(name: str) -> None:
    thinking_open, expected = SAMPLES[name]
    text = load(name)
    for i in range(len(text) + 1):
        assert normalise(run([text[:i], text[i:]], thinking_open)) == expected, f"split at {i}"


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_character_by_character_and_random_chunks(name: str) -> None:
    thinking_open, expected = SAMPLES[name]
    text = load(name)
    assert normalise(run(list(text), thinking_open)) == expected
    rng = random.Random(name)
    for _ in range(50):
        cuts = sorted(rng.sample(range(1, len(text)), k=rng.randint(1, 12)))
        chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        assert normalise(run(chunks, thinking_open)) == expected, cuts


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_byte_by_byte_through_detokenizer(name: str) -> None:
    """Each byte a token: the detokenizer yields whole characters, the parser the same events."""
    thinking_open, expected = SAMPLES[name]
    data = load(name).encode("utf-8")
    detok = IncrementalDetokenizer(lambda token: bytes([token]))
    chunks = [detok.add(byte) for byte in data] + [detok.flush()]
    assert "\ufffd" not in "".join(chunks)
    assert normalise(run(chunks, thinking_open)) == expected


def test_tool_calls_are_text_when_tools_disabled() -> None:
    text = load("qwen3_think_json_tool.txt")
    events = normalise(run([text], thinking_open=False, tools=False))
    assert events[0][0] == "reasoning"
    assert events[1] == ("text", text.split("</think>\n\n", 1)[1])
    assert len(events) == 2


def test_events_arrive_as_soon_as_certain() -> None:
    parser = new_parser(thinking_open=False)
    assert parser.feed("<think>\n我在") == [ReasoningDelta("我在")]
    assert parser.feed("想\n") == [ReasoningDelta("想")]  # trailing newline held back
    assert parser.feed("</thi") == []
    assert parser.feed("nk>\n\n答案") == [TextDelta("答案")]
    assert parser.feed("是 42 <tool_c") == [TextDelta("是 42 ")]
    assert parser.feed("all>\n") == []
    assert parser.tool_call_count == 0
    events = parser.feed('{"name": "f", "arguments": {}}\n</tool_call>')
    assert [type(e) for e in events] == [ToolCallEvent]
    assert parser.tool_call_count == 1
    assert parser.finish() == []


def test_hold_back_is_never_longer_than_a_tag_prefix() -> None:
    parser = new_parser(thinking_open=False)
    assert parser.feed("a <") == [TextDelta("a ")]
    assert parser.feed(" b") == [TextDelta("< b")]
    assert parser.feed(" <tool") == [TextDelta(" ")]
    assert parser.feed("box>") == [TextDelta("<toolbox>")]
    no_tools = new_parser(thinking_open=False, tools=False)
    assert no_tools.feed("x <tool_c") == [TextDelta("x <tool_c")]


def test_think_only_opens_at_the_start() -> None:
    events = normalise(run(["Use <think> tags like this: <think>x</think>"], False))
    assert events == [("text", "Use <think> tags like this: <think>x</think>")]
    events = normalise(run(["\n  <think>\nhmm\n</think>\n\nok"], False))
    assert events == [("reasoning", "hmm"), ("text", "ok")]


def test_thinking_open_prompt_starts_in_reasoning() -> None:
    events = normalise(run(["\nstep 1\nstep 2\n</think>\n\n", "结果：✅"], thinking_open=True))
    assert events == [("reasoning", "step 1\nstep 2"), ("text", "结果：✅")]
