"""ChatTemplate: the sandboxed Jinja2 environment HF chat templates expect."""

from __future__ import annotations

import re

import pytest

from openwen.errors import InvalidRequestError
from openwen.formats.template import CHATML_TEMPLATE, ChatTemplate
from openwen.messages import Message, ToolCall

USER = [Message("user", "hi")]


def render(source: str, messages=USER, **kwargs) -> str:
    return ChatTemplate(source, bos_token="<s>", eos_token="</s>").render(messages, **kwargs)


def test_special_tokens_and_generation_prompt_flag() -> None:
    source = "{{ bos_token }}{{ messages[0].content }}{% if add_generation_prompt %}>{% endif %}"
    assert render(source + "{{ eos_token }}") == "<s>hi></s>"
    assert render(source, add_generation_prompt=False) == "<s>hi"


def test_tojson_keeps_non_ascii_and_does_not_html_escape() -> None:
    tools = [{"type": "function", "function": {"name": "搜索", "description": "a < b & 'c'"}}]
    out = render("{% for t in tools %}{{ t | tojson }}{% endfor %}", tools=tools)
    assert out == (
        '{"type": "function", "function": {"name": "搜索", "description": "a < b & \'c\'"}}'
    )


def test_tojson_arguments_like_hf() -> None:
    out = render("{{ {'b': [1, 2], 'a': 'é'} | tojson(indent=2, sort_keys=True) }}")
    assert out == '{\n  "a": "é",\n  "b": [\n    1,\n    2\n  ]\n}'
    assert render("{{ 'é' | tojson(ensure_ascii=True) }}") == '"\\u00e9"'


def test_tools_is_none_when_no_tools() -> None:
    source = "{% if tools is none %}none{% else %}{{ tools | length }}{% endif %}"
    assert render(source) == "none"
    assert render(source, tools=[{"type": "function", "function": {"name": "f"}}]) == "1"


def test_enable_thinking_is_undefined_unless_given() -> None:
    source = "{% if enable_thinking is defined %}{{ enable_thinking }}{% else %}unset{% endif %}"
    assert render(source) == "unset"
    assert render(source, enable_thinking=False) == "False"
    assert render(source, enable_thinking=True) == "True"


def test_extra_kwargs_reach_the_template() -> None:
    assert (
        render("{{ custom }}-{{ reasoning_effort }}", custom=7, reasoning_effort="low") == "7-low"
    )


def test_strftime_now() -> None:
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", render("{{ strftime_now('%Y-%m-%d') }}"))


def test_loop_controls() -> None:
    source = "{% for i in [1, 2, 3, 4] %}{% if i == 2 %}{% continue %}{% endif %}"
    source += "{% if i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}"
    assert render(source) == "13"


def test_generation_block_renders_its_body() -> None:
    source = "A{% generation %}{{ messages[0].content }}{% endgeneration %}B"
    assert render(source) == "AhiB"


def test_raise_exception_becomes_invalid_request() -> None:
    source = "{% if messages[0].role != 'system' %}{{ raise_exception('Need a system turn!') }}"
    source += "{% endif %}"
    with pytest.raises(InvalidRequestError, match="Need a system turn!") as info:
        render(source)
    assert info.value.status == 400
    assert info.value.param == "messages"


def test_syntax_error_becomes_invalid_request() -> None:
    with pytest.raises(InvalidRequestError, match="chat template is invalid"):
        render("{% for m in messages %}{{ m.content }}")


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{% set xs = [] %}{{ xs.append(1) }}",
        "{{ messages[0].update({'role': 'x'}) }}",
        "{{ 1 / 0 }}",
    ],
)
def test_unsafe_or_failing_templates_become_invalid_request(source: str) -> None:
    with pytest.raises(InvalidRequestError, match="chat template failed to render"):
        render(source)


def test_messages_are_openai_shaped_dicts() -> None:
    call = ToolCall(id="call_1", name="add", arguments='{"a": 1, "b": 2}')
    messages = [
        Message("developer", "be brief"),
        Message("assistant", None, reasoning="思考", tool_calls=(call,)),
        Message("tool", "3", tool_call_id="call_1"),
    ]
    source = (
        "{% for m in messages %}{{ m.role }}|{{ m.content }}|"
        "{{ m.reasoning_content if m.reasoning_content is defined else '' }}|"
        "{% for c in m.tool_calls or [] %}{{ c.function.name }}{{ c.function.arguments.a }}"
        "{% endfor %}|{{ m.tool_call_id if m.tool_call_id is defined else '' }};{% endfor %}"
    )
    assert render(source, messages) == "system|be brief|||;assistant||思考|add1|;tool|3|||call_1;"


def test_chatml_fallback_without_a_template() -> None:
    template = ChatTemplate(None)
    assert template.is_fallback and template.source == CHATML_TEMPLATE
    out = template.render([Message("system", "你是助手。"), Message("user", "你好 👋")])
    assert out == (
        "<|im_start|>system\n你是助手。<|im_end|>\n"
        "<|im_start|>user\n你好 👋<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert ChatTemplate("   \n").is_fallback


def test_chatml_fallback_with_tools_and_a_tool_round_trip() -> None:
    tool = {"type": "function", "function": {"name": "now", "parameters": {"type": "object"}}}
    call = ToolCall(id="call_9", name="now", arguments="{}")
    messages = [
        Message("user", "几点了？"),
        Message("assistant", "", tool_calls=(call,)),
        Message("tool", "12:00", tool_call_id="call_9"),
    ]
    out = ChatTemplate(None).render(messages, tools=[tool])
    assert out.startswith("<|im_start|>system\n# Tools\n")
    assert '<tools>\n{"type": "function", "function": {"name": "now"' in out
    assert (
        '<|im_start|>assistant\n<tool_call>\n{"name": "now", "arguments": {}}\n</tool_call>'
        "<|im_end|>\n<|im_start|>user\n<tool_response>\n12:00\n</tool_response><|im_end|>\n"
    ) in out
    assert out.endswith("<|im_start|>assistant\n")
