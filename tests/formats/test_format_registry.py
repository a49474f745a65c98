"""format_for: which adapter a model gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from openwen.formats import GenericFormat, QwenFormat, format_for
from openwen.formats.registry import looks_like_qwen_template
from openwen.messages import Message, TextDelta, ToolCallEvent
from openwen.requests import Sampling

FIXTURES = Path(__file__).parent / "fixtures"

SMOL_LIKE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + "
    "'\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
HERMES_LIKE = (
    "{% for m in messages %}{{ '<|im_start|>' + m.role + '\n' + m.content + '<|im_end|>\n' }}"
    "{% endfor %}{# <tool_call> ... <tool_response> #}"
)
LLAMA3_LIKE = "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m.role }}{% endfor %}"


def pick(template: str | None, arch: str | None, name: str | None = None):
    return format_for(
        template, architecture=arch, bos_token="", eos_token="<|im_end|>", model_name=name
    )


@pytest.mark.parametrize(
    "arch", ["qwen2", "qwen3", "qwen3moe", "qwen2moe", "qwen3next", "qwen35", "Qwen3", "qwen3vl"]
)
def test_qwen_architectures_get_the_qwen_adapter(arch: str) -> None:
    assert isinstance(pick(SMOL_LIKE, arch), QwenFormat)


@pytest.mark.parametrize(
    "name",
    ["qwen2.5-7b-instruct.jinja", "qwen3-0.6b.jinja", "qwen3-coder.jinja", "qwen3.5-4b.jinja"],
)
def test_real_qwen_templates_look_like_qwen(name: str) -> None:
    source = (FIXTURES / name).read_text("utf-8")
    assert looks_like_qwen_template(source)
    assert isinstance(pick(source, "llama"), QwenFormat)  # e.g. a fine-tune in another arch


def test_other_families_are_generic() -> None:
    for template in (SMOL_LIKE, HERMES_LIKE, LLAMA3_LIKE, None):
        fmt = pick(template, "llama", "SmolLM2 135M Instruct")
        assert isinstance(fmt, GenericFormat) and fmt.family == "generic"
    assert not looks_like_qwen_template(HERMES_LIKE)


def test_model_name_decides_only_for_chatml_templates() -> None:
    assert isinstance(pick(SMOL_LIKE, "llama", "Qwen2.5 Math 1.5B distill"), QwenFormat)
    assert isinstance(pick(LLAMA3_LIKE, "llama", "Qwen2.5 distilled into Llama"), GenericFormat)


def test_missing_template_falls_back_to_chatml_in_both_adapters() -> None:
    for fmt in (pick(None, "qwen3"), pick(None, None)):
        text = fmt.render([Message("user", "hi")]).text
        assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_generic_adapter_defaults() -> None:
    fmt = pick(SMOL_LIKE, "llama")
    assert fmt.sampling_defaults(None) == Sampling()
    assert fmt.sampling_defaults(True) == Sampling()
    assert fmt.stop_strings == ("<|im_end|>",)
    rendered = fmt.render([Message("user", "hi")])
    assert rendered.thinking is None and rendered.thinking_open is False
    llama = format_for(
        LLAMA3_LIKE,
        architecture="llama",
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        model_name=None,
    )
    assert llama.stop_strings == ("<|eot_id|>",)
    assert llama.render([Message("user", "x")]).text == "<|begin_of_text|><|start_header_id|>user"


def test_generic_parser_passes_text_and_still_knows_qwen_tags() -> None:
    fmt = pick(SMOL_LIKE, "llama")
    rendered = fmt.render([Message("user", "hi")])
    plain = fmt.parser(rendered, tools_enabled=False)
    assert plain.feed("Hello! <b>bold</b>\n") + plain.finish() == [TextDelta("Hello! <b>bold</b>")]
    parser = fmt.parser(rendered, tools_enabled=True)
    events = parser.feed('<think>\nhm\n</think>\n\nok\n<tool_call>\n{"name": "f", "arguments": {}}')
    events += parser.feed("\n</tool_call>") + parser.finish()
    assert [e.kind for e in events] == ["reasoning", "text", "tool_call"]
    assert isinstance(events[2], ToolCallEvent) and events[2].call.name == "f"
