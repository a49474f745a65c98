"""IncrementalDetokenizer: only complete UTF-8 characters come out."""

from __future__ import annotations

import random

from openwen.formats.detokenize import IncrementalDetokenizer

TEXT = "你好，世界！Qwen 会说中文 🐼🎉 and emoji with modifiers 👋🏽 👩‍💻 é."


def pieces_detokenizer(pieces: list[bytes]) -> IncrementalDetokenizer:
    return IncrementalDetokenizer(lambda token: pieces[token])


def test_byte_by_byte_gives_whole_characters_only() -> None:
    data = TEXT.encode("utf-8")
    detok = pieces_detokenizer([bytes([b]) for b in data])
    outputs = [detok.add(i) for i in range(len(data))]
    assert "".join(outputs) + detok.flush() == TEXT
    assert all("\ufffd" not in out for out in outputs)
    # a 4-byte emoji gives three empty results, then the whole character
    start = data.index("🐼".encode())
    assert outputs[start : start + 4] == ["", "", "", "🐼"]
    # a 3-byte Chinese character: two empty results, then the character
    assert outputs[0:3] == ["", "", "你"]


def test_random_token_boundaries() -> None:
    data = TEXT.encode("utf-8")
    rng = random.Random(7)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(data)), k=rng.randint(1, 30)))
        pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        detok = pieces_detokenizer(pieces)
        outputs = [detok.add(i) for i in range(len(pieces))]
        assert "".join(outputs) + detok.flush() == TEXT
        assert all("\ufffd" not in out for out in outputs)


def test_pending_bytes_are_held_back() -> None:
    emoji = "😊".encode()
    detok = pieces_detokenizer([emoji[:2], emoji[2:]])
    assert detok.add(0) == ""
    assert detok.pending == emoji[:2]
    assert detok.add(1) == "😊"
    assert detok.pending == b""


def test_flush_turns_leftover_bytes_into_replacement_char() -> None:
    detok = pieces_detokenizer([b"ok ", "中".encode()[:2]])
    assert detok.add(0) == "ok "
    assert detok.add(1) == ""
    assert detok.flush() == "\ufffd"
    assert detok.flush() == ""  # reset after flush


def test_invalid_bytes_are_replaced_as_soon_as_certain() -> None:
    detok = pieces_detokenizer([b"a\xffb", "中".encode()[:1], b"c"])
    assert detok.add(0) == "a\ufffdb"
    assert detok.add(1) == ""
    assert detok.add(2) == "\ufffdc"  # the broken lead byte cannot be completed by "c"
