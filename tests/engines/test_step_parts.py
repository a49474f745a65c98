"""The step loop's small parts: the greedy argmax over a step's rows, stop strings' fast path,
and the logits view reused between steps (against the real bundled model)."""

from __future__ import annotations

import numpy as np
import pytest

from openwen.engines.batch_sampling import greedy_tokens
from openwen.engines.stops import StopMatcher


def test_greedy_tokens_any_rows() -> None:
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((6, 300)).astype(np.float32)
    want = [int(row.argmax()) for row in logits]
    for rows in ([0], [3], [0, 1, 2, 3, 4, 5], [0, 1], [1, 2, 5], [0, 4], [2, 3]):
        assert greedy_tokens(logits, rows) == [want[r] for r in rows]


def test_greedy_tokens_first_maximum() -> None:
    logits = np.zeros((2, 8), dtype=np.float32)
    logits[0, [2, 5]] = 1.0
    logits[1, [7, 1]] = 3.0
    assert greedy_tokens(logits, [0, 1]) == [2, 1]


def _feed_all(stops: list[str], pieces: list[str]) -> tuple[str, StopMatcher]:
    matcher = StopMatcher(stops)
    out = "".join(matcher.feed(p) for p in pieces) + matcher.flush()
    return out, matcher


@pytest.mark.parametrize("pieces", [
    ["Hello", " world", "<|im", "_end", "|>", "more"],
    ["Hello world<", "|im_end|>more"],
    ["Hello world<|im_end|>more"],
    ["a < b", " and <|", "im_e", "nd|> tail"],
])
def test_stop_string_split_anywhere(pieces: list[str]) -> None:
    out, matcher = _feed_all(["<|im_end|>"], pieces)
    assert matcher.stopped and matcher.matched == "<|im_end|>"
    assert out == "".join(pieces).split("<|im_end|>")[0]


def test_text_without_stop_starts_is_passed_through_and_held_text_released() -> None:
    matcher = StopMatcher(["END", "<|im_end|>"])
    assert matcher.feed("plain text ") == "plain text "
    assert matcher.feed("then E") == "then "  # "E" may start "END": held back
    assert matcher.feed("xit") == "Exit"  # ... and released with text that starts nothing
    assert matcher.feed("<") == ""
    assert matcher.feed("p>") == "<p>"
    assert not matcher.stopped
    assert matcher.flush() == ""


def test_step_logits_view_follows_the_context() -> None:
    from openwen.engines.batch_native import NativeContext, NativeModel
    from openwen.engines.batch_sampling import step_logits
    from openwen.models.store import bundled_model_path

    model = NativeModel(bundled_model_path())
    ctx = NativeContext(model, n_cells=256, n_seq=2, n_batch=64, n_threads=1)
    try:
        prompt = model.tokenize("Hello there, how are you?", add_bos=True)
        for step in range(3):
            for seq in range(2):
                if step == 0:
                    ctx.put_run(seq * len(prompt), prompt, 0, seq)
                    ctx.logits[seq * len(prompt) + len(prompt) - 1] = 1
                else:
                    ctx.put(seq, prompt[step] + seq, len(prompt) + step - 1, seq, True)
            n = 2 * len(prompt) if step == 0 else 2
            assert ctx.decode(n) == 0
            view = ctx.output_logits(2)
            fresh = step_logits(ctx.ctx, 2, ctx.n_vocab)
            assert view.shape == (2, ctx.n_vocab)
            assert np.array_equal(view, fresh)  # the reused view reads this step's logits
    finally:
        ctx.close()
        model.close()
