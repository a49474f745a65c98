"""Datasets: JSONL parsing errors name the line; rendering with SmolLM2's own template; masking;
truncation; the held-out split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openwen.messages import Message
from openwen.tune.data import (
    IGNORE,
    MIN_PIECE,
    parse_jsonl,
    prepare,
    read_jsonl,
    segments,
    tokenize_chat,
)
from openwen.tune.errors import DatasetError
from openwen.tune.tokens import GGUFTokenizer


@pytest.fixture(scope="module")
def tok(bundled_model: Path) -> GGUFTokenizer:
    return GGUFTokenizer(bundled_model)


def jsonl(*rows: object) -> bytes:
    return ("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n").encode()


CHAT = {"messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "Capital of France?"},
                     {"role": "assistant", "content": "Paris."},
                     {"role": "user", "content": "And of Italy?"},
                     {"role": "assistant", "content": "Rome."}]}
PAIR = {"prompt": "2+2?", "completion": "4"}


def test_both_shapes_parse_and_blank_lines_are_skipped() -> None:
    raw = parse_jsonl(jsonl(CHAT, "", "   ", PAIR), name="mixed.jsonl")
    assert len(raw.examples) == 2
    assert [m.role for m in raw.examples[1]] == ["user", "assistant"]
    assert raw.examples[1][1].content == "4"
    assert len(raw.sha256) == 64


@pytest.mark.parametrize(("row", "words"), [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ({"txt": "hi"}, "expected 'messages'"),
    ({"text": "  "}, "'text' must be non-empty"),
    ({"messages": [{"role": "user", "content": "q"},
                   {"role": "assistant", "content": "a", "weight": 0.5}]}, "weight 0.5"),
    ({"messages": [{"role": "user", "content": "q", "weight": 0},
                   {"role": "assistant", "content": "a"}]}, "weight 0"),
    ({"messages": [{"role": "user", "content": "q"},
                   {"role": "assistant", "content": "a", "weight": 0}]}, "no assistant message"),
    ({"messages": []}, "non-empty list"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "role 'robot'"),
    ({"messages": [{"role": "user", "content": 3}]}, "no text 'content'"),
    ({"messages": [{"role": "user", "content": "only a question"}]}, "no assistant message"),
    ({"prompt": "q", "completion": ""}, "'completion' is empty"),
    ({"prompt": 1, "completion": "a"}, "must be strings"),
])
def test_a_malformed_line_is_named(row: object, words: str) -> None:
    with pytest.raises(DatasetError) as err:
        parse_jsonl(jsonl(PAIR, PAIR, row, PAIR), name="bad.jsonl")
    assert err.value.line == 3
    assert err.value.message.startswith("line 3: ")
    assert words in err.value.message


def test_empty_dataset_and_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="has no examples"):
        parse_jsonl(b"\n\n", name="empty.jsonl")
    with pytest.raises(DatasetError, match="cannot read"):
        read_jsonl(tmp_path / "missing.jsonl")
    with pytest.raises(DatasetError, match="line 2: not UTF-8"):
        parse_jsonl(b'{"prompt": "a", "completion": "b"}\n\xff\xfe\n', name="bin.jsonl")


def test_rendered_with_the_models_template_and_only_answers_trained(tok: GGUFTokenizer) -> None:
    chat = parse_jsonl(jsonl(CHAT), name="c").examples[0]
    pieces = segments(tok.format, chat)
    full = tok.format.render(chat, add_generation_prompt=False).text
    assert "".join(t for t, _ in pieces) == full  # nothing lost, nothing added
    assert "<|im_start|>assistant" in full  # SmolLM2's ChatML template from the GGUF
    trained = [t for t, on in pieces if on]
    assert trained == ["Paris.<|im_end|>\n", "Rome.<|im_end|>\n"]
    ex = tokenize_chat(tok.format, tok, chat)
    assert len(ex.ids) == len(ex.labels)
    target = [t for t, lab in zip(ex.ids, ex.labels, strict=True) if lab != IGNORE]
    assert tok.detokenize(target) == "Paris.\nRome.\n"  # special tokens render empty
    im_end = tok("<|im_end|>", False)
    assert target.count(im_end[0]) == 2  # the model learns to stop after each answer
    assert ex.labels[0] == IGNORE


def test_truncation_is_counted_then_refused_beyond_a_share(tok: GGUFTokenizer) -> None:
    long = {"prompt": "word " * 400, "completion": "short answer"}
    rows = [PAIR] * 9 + [long]
    prepared = prepare(parse_jsonl(jsonl(*rows), name="d"), tok.format, tok, max_length=64)
    assert prepared.truncated == 1
    assert prepared.warnings == ["1 of 10 examples are longer than 64 tokens and were truncated"]
    assert all(len(e.ids) <= 64 for e in prepared.train + prepared.heldout)
    with pytest.raises(DatasetError, match="5 of 10 examples are longer than 64 tokens, more "
                       "than 25%"):
        prepare(parse_jsonl(jsonl(*([PAIR] * 5 + [long] * 5)), name="d"), tok.format, tok,
                max_length=64)


def test_heldout_split_is_ten_percent_at_least_one_and_seeded(tok: GGUFTokenizer) -> None:
    rows = [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(30)]
    raw = parse_jsonl(jsonl(*rows), name="d")
    a = prepare(raw, tok.format, tok, max_length=256, seed=1)
    b = prepare(raw, tok.format, tok, max_length=256, seed=1)
    assert (len(a.train), len(a.heldout)) == (27, 3)
    assert [c[0].content for c in a.heldout_chats] == [c[0].content for c in b.heldout_chats]
    small = prepare(parse_jsonl(jsonl(PAIR, PAIR, PAIR), name="d"), tok.format, tok,
                    max_length=256)
    assert (len(small.train), len(small.heldout)) == (2, 1)
    with pytest.raises(DatasetError, match="at least 2 are needed"):
        prepare(parse_jsonl(jsonl(PAIR), name="d"), tok.format, tok, max_length=256)


def test_templates_that_rewrite_history_train_the_last_turn() -> None:
    class Rewriting:  # renders earlier answers differently once later turns follow (as Qwen3)
        def render(self, messages, add_generation_prompt=True, **_: object):  # type: ignore
            from openwen.formats import RenderedPrompt

            parts = []
            for i, m in enumerate(messages):
                last = i == len(messages) - 1
                text = m.content.upper() if m.role == "assistant" and not last else m.content
                parts.append(f"<{m.role}>{text}</{m.role}>")
            return RenderedPrompt("".join(parts) + ("<assistant>" if add_generation_prompt
                                                     else ""))

    chat = [Message(role="user", content="q"), Message(role="assistant", content="a"),
            Message(role="user", content="q2"), Message(role="assistant", content="b")]
    pieces = segments(Rewriting(), chat)  # type: ignore[arg-type]
    assert [t for t, on in pieces if on] == ["b</assistant>"]
    assert "".join(t for t, _ in pieces) == Rewriting().render(chat, False).text


def test_weight_zero_answers_are_context_only(tok: GGUFTokenizer) -> None:
    row = json.loads(json.dumps(CHAT))
    row["messages"][2]["weight"] = 0  # "Paris." is context; only "Rome." is learnt
    raw = parse_jsonl(jsonl(row, PAIR), name="w")
    assert raw.untrained == {0: frozenset({2})}
    chat = raw.examples[0]
    assert isinstance(chat, list)
    pieces = segments(tok.format, chat, raw.untrained[0])
    assert [t for t, on in pieces if on] == ["Rome.<|im_end|>\n"]
    full = tok.format.render(chat, add_generation_prompt=False).text
    assert "".join(t for t, _ in pieces) == full
    ex = tokenize_chat(tok.format, tok, chat, raw.untrained[0])
    target = [t for t, lab in zip(ex.ids, ex.labels, strict=True) if lab != IGNORE]
    assert tok.detokenize(target) == "Rome.\n"


def test_texts_are_learnt_whole_in_pieces_of_the_maximum_length(tok: GGUFTokenizer) -> None:
    text = " ".join(f"Sentence number {i} of the manual." for i in range(60))
    n_tokens = len(tok(text, True))
    raw = parse_jsonl(jsonl({"text": text}, PAIR), name="docs")
    assert raw.examples[0] == text
    prepared = prepare(raw, tok.format, tok, max_length=64)
    pieces = [e for e in prepared.train + prepared.heldout if e.labels == e.ids]
    expected = -(-n_tokens // 64) - (1 if 0 < n_tokens % 64 < MIN_PIECE else 0)
    assert len(pieces) == expected > 2
    assert all(len(e.ids) <= 64 and e.n_target == len(e.ids) for e in pieces)
    assert sum(len(e.ids) for e in pieces) >= n_tokens - 8
    assert len(prepared.heldout) == round((len(pieces) + 1) * 0.1)
    assert prepared.truncated == 0 and prepared.warnings == []
    assert all(isinstance(c, list) for c in prepared.heldout_chats)  # texts are not sampled
    one = prepare(parse_jsonl(jsonl({"text": text}), name="one"), tok.format, tok, max_length=64)
    assert len(one.train) >= 1 and len(one.heldout) == 1  # one long text still splits
