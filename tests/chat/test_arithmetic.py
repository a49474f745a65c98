"""The calculator finishes the equations an answer writes: the pattern on scripted text, then on
the real bundled model through the web app's chat flow."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from openwen.chat.arithmetic import complete, finish_arithmetic
from openwen.messages import Done, StreamEvent, TextDelta, Usage


@pytest.mark.parametrize(("text", "result"), [
    ("12 * 12 =", "144"),
    ("The answer is 100 - 37 = ", "63"),
    ("81 / 9 =", "9"),
    ("7 x 8 =", "56"),
    ("(2 + 3) × 4 equals", "20"),
    ("1,000 * 3 =", "3000"),
    ("2 ^ 10 =", "1024"),
    ("10 / 4 =", "2.5"),
    ("81 divided by 9 equals", "9"),
    ("12 times 12 is", "144"),
    ("6 multiplied by 9 =", "54"),
])
def test_an_equation_is_computed(text: str, result: str) -> None:
    assert complete(text) == result


@pytest.mark.parametrize("text", [
    "x = ",  # no numbers
    "12 =",  # no operator: nothing to compute
    "2024-12-01T10:00 =",  # not arithmetic the model laid out
    "5 / 0 =",  # the calculator refuses: the model's own text stands
    "speed = 12 * 12 m/s",  # no = at the end
    "v2 + 3 =",  # a name, not a number
    "A spider has 8 legs and this is",  # no arithmetic before "is"
])
def test_anything_else_is_left_alone(text: str) -> None:
    assert complete(text) is None


async def scripted(*pieces: str) -> AsyncIterator[StreamEvent]:
    for piece in pieces:
        yield TextDelta(piece)
    yield Done("stop", Usage(40, len(pieces)))


async def run(*pieces: str, told: list[tuple[str, str]] | None = None) -> list[StreamEvent]:
    def tell(equation: str, result: str) -> None:
        if told is not None:
            told.append((equation, result))

    return [e async for e in finish_arithmetic(scripted(*pieces), tell)]


async def test_the_models_guess_is_replaced_and_the_answer_ends() -> None:
    told: list[tuple[str, str]] = []
    events = await run("12", " *", " 12", " =", " 120", ".", " So it is 120.", told=told)
    assert told == [("12 * 12 =", "144")]
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == "12 * 12 = 144"
    assert isinstance(events[-1], Done) and events[-1].finish_reason == "stop"
    assert events[-1].usage.completion_tokens == 4  # the pieces received before the end


async def test_a_piece_that_carries_the_equals_sign_and_more() -> None:
    events = await run("3 + 5", "= 9 apples")
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "3 + 5= 8"


async def test_text_without_an_equation_passes_unchanged() -> None:
    events = await run("The capital", " of France", " is Paris.")
    assert [e.text for e in events if isinstance(e, TextDelta)] == [
        "The capital", " of France", " is Paris."]
    assert events[-1] == Done("stop", Usage(40, 3))  # the engine's own Done
