"""Everyday questions, answered through the web app's own chat flow: how often is the answer right?

Each question is asked in a fresh conversation of a fresh user through
:class:`~openwen.chat.conversations.ConversationChat` exactly as the web app builds it
(:class:`~openwen.server.app.state.WebState`: real SQLite store, the chat service on the real
bundled SmolLM2-135M-Instruct, the web app's tools), then the stored answer is checked.

Configurations (``--configs``):

- ``before``: today's defaults before model profiles: no system prompt, engine default sampling,
  tools on (the full tools prompt);
- ``previous``: SmolLM2's profile before example exchanges and the calculator's arithmetic
  (answer-first system prompt, greedy, tools off);
- ``after``: the model's profile as it is (for SmolLM2 also three example exchanges, and the
  calculator finishing the equations the model writes);
- ``calculator``: the profile with the calculator's arithmetic but without the examples;
- ``after-tools``: the profile with tools switched on by the chat (what a user who turns tools
  on gets).

A check is strict about what counts: for a number, the first number in the answer that is not
in the question must be the expected one; for words, one of the accepted answers must appear (as
a word) in the first 200 characters. Every answer is capped at ``--max-tokens`` (same for all
configurations, to bound the run); documents and memory are off (no embedding model).

Sets (``--sets``): ``main``, ``heldout`` (paraphrases) and ``fresh`` (a third set kept out of
every choice made after it was written); ``--every N``
asks every N-th question only (a quick subset while iterating).

    .venv/bin/python bench/everyday.py [--configs before,previous,after] [--sets main,heldout]
        [--every 1] [--repeats 1] [--max-tokens 96]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# (kind, question, accepted answers): a number, or words any of which is right
QUESTIONS: list[tuple[str, str, tuple[str, ...]]] = [
    ("arithmetic", "What is 2 + 2?", ("4",)),
    ("arithmetic", "What is 3 + 5?", ("8",)),
    ("arithmetic", "What is 7 times 8?", ("56",)),
    ("arithmetic", "What is 15 + 27?", ("42",)),
    ("arithmetic", "What is 100 minus 37?", ("63",)),
    ("arithmetic", "What is 12 times 12?", ("144",)),
    ("arithmetic", "What is 81 divided by 9?", ("9",)),
    ("arithmetic", "What is 9 times 6?", ("54",)),
    ("fact", "What is the capital of France?", ("paris",)),
    ("fact", "What is the capital of Japan?", ("tokyo",)),
    ("fact", "What is the capital of Italy?", ("rome",)),
    ("fact", "What is the capital of Germany?", ("berlin",)),
    ("fact", "What is the largest planet in the solar system?", ("jupiter",)),
    ("fact", "What color is the sky on a clear day?", ("blue",)),
    ("fact", "What is the opposite of hot?", ("cold",)),
    ("fact", "How many legs does a spider have?", ("8", "eight")),
    ("fact", "What do bees make?", ("honey",)),
    ("fact", "What is frozen water called?", ("ice",)),
    ("calendar", "How many days are in a week?", ("7", "seven")),
    ("calendar", "How many months are in a year?", ("12", "twelve")),
    ("calendar", "Which month comes after March?", ("april",)),
    ("calendar", "How many days are in a leap year?", ("366",)),
    ("calendar", "Which day comes after Monday?", ("tuesday",)),
    ("calendar", "How many hours are in a day?", ("24", "twenty-four")),
    ("units", "How many centimeters are in a meter?", ("100", "hundred")),
    ("units", "How many minutes are in an hour?", ("60", "sixty")),
    ("units", "How many grams are in a kilogram?", ("1000", "1,000", "thousand")),
    ("units", "How many seconds are in a minute?", ("60", "sixty")),
    ("translation", "Translate 'thank you' into French.", ("merci",)),
    ("translation", "Translate 'hello' into Spanish.", ("hola",)),
    ("translation", "Translate 'cat' into Spanish.", ("gato",)),
    ("translation", "Translate 'dog' into German.", ("hund",)),
    ("translation", "Translate 'good morning' into German.", ("guten morgen",)),
    ("translation", "Translate 'water' into French.", ("eau", "l'eau")),
]

# Paraphrases of the same kinds, with other numbers, words and phrasings ("Add 6 and 9.",
# "What is the German word for 'house'?"): nothing was tuned on these; a change that helps
# only the wording above shows here as no gain.
HELDOUT: list[tuple[str, str, tuple[str, ...]]] = [
    ("arithmetic", "Add 6 and 9.", ("15",)),
    ("arithmetic", "What do you get if you multiply 4 by 7?", ("28",)),
    ("arithmetic", "Calculate 23 plus 19.", ("42",)),
    ("arithmetic", "What is 50 take away 18?", ("32",)),
    ("arithmetic", "How much is 11 times 11?", ("121",)),
    ("arithmetic", "What is 72 divided by 8?", ("9",)),
    ("arithmetic", "What's 13 + 28?", ("41",)),
    ("arithmetic", "What is 6 multiplied by 9?", ("54",)),
    ("fact", "Which city is the capital of Spain?", ("madrid",)),
    ("fact", "Name the capital city of England.", ("london",)),
    ("fact", "What is the capital of Russia?", ("moscow",)),
    ("fact", "Which planet do we live on?", ("earth",)),
    ("fact", "What colour is grass?", ("green",)),
    ("fact", "What is the opposite of up?", ("down",)),
    ("fact", "How many legs does a dog have?", ("4", "four")),
    ("fact", "Which animal says moo?", ("cow", "cows")),
    ("fact", "What gas do people need to breathe?", ("oxygen",)),
    ("fact", "What is the closest star to the Earth?", ("sun",)),
    ("calendar", "How many days does a week have?", ("7", "seven")),
    ("calendar", "What month comes before February?", ("january",)),
    ("calendar", "How many days are in the month of June?", ("30", "thirty")),
    ("calendar", "What day comes before Sunday?", ("saturday",)),
    ("calendar", "How many weeks are in a year?", ("52", "fifty-two")),
    ("calendar", "How many seasons are there in a year?", ("4", "four")),
    ("units", "How many millimeters are in a centimeter?", ("10", "ten")),
    ("units", "How many meters are in a kilometer?", ("1000", "1,000", "thousand")),
    ("units", "How many hours are in two days?", ("48", "forty-eight")),
    ("units", "How many inches are in a foot?", ("12", "twelve")),
    ("translation", "How do you say 'yes' in Spanish?", ("sí", "si")),
    ("translation", "What is 'goodbye' in French?", ("au revoir",)),
    ("translation", "Translate 'bread' into French.", ("pain",)),
    ("translation", "What is the German word for 'house'?", ("haus",)),
    ("translation", "Translate 'thank you' into Spanish.", ("gracias",)),
    ("translation", "Say 'one' in German.", ("eins",)),
]

# A third set, written (2026-12-02 03:15 UTC) before the profile changes of that day were tried:
# they were chosen on `main` and `heldout` (both then tuning sets), and `fresh` was run once, after.
FRESH: list[tuple[str, str, tuple[str, ...]]] = [
    ("arithmetic", "What is the sum of 14 and 25?", ("39",)),
    ("arithmetic", "Subtract 9 from 30.", ("21",)),
    ("arithmetic", "What is 5 times 9?", ("45",)),
    ("arithmetic", "Multiply 3 by 12.", ("36",)),
    ("arithmetic", "What is 64 divided by 4?", ("16",)),
    ("arithmetic", "What is 45 + 38?", ("83",)),
    ("arithmetic", "How much is 90 minus 45?", ("45",)),
    ("arithmetic", "If I have 7 apples and buy 5 more, how many apples do I have?", ("12",)),
    ("fact", "What is the capital of Canada?", ("ottawa",)),
    ("fact", "What is the capital of China?", ("beijing",)),
    ("fact", "Which ocean is the largest?", ("pacific",)),
    ("fact", "What is the opposite of big?", ("small", "little")),
    ("fact", "How many legs does a bird have?", ("2", "two")),
    ("fact", "What colour is a ripe banana?", ("yellow",)),
    ("fact", "Which animal is called the king of the jungle?", ("lion",)),
    ("fact", "At how many degrees Celsius does water boil?", ("100",)),
    ("fact", "What is a baby cat called?", ("kitten",)),
    ("fact", "Which planet is known as the Red Planet?", ("mars",)),
    ("calendar", "How many days are in a year that is not a leap year?", ("365",)),
    ("calendar", "Which month comes after June?", ("july",)),
    ("calendar", "What is the first month of the year?", ("january",)),
    ("calendar", "Which day comes after Friday?", ("saturday",)),
    ("calendar", "How many days does February have in a leap year?", ("29",)),
    ("calendar", "What is the last month of the year?", ("december",)),
    ("units", "How many centimeters are in two meters?", ("200",)),
    ("units", "How many seconds are in an hour?", ("3600", "3,600")),
    ("units", "How many feet are in a yard?", ("3", "three")),
    ("units", "How many ounces are in a pound?", ("16", "sixteen")),
    ("translation", "Translate 'red' into Spanish.", ("rojo",)),
    ("translation", "What is 'friend' in Spanish?", ("amigo", "amiga")),
    ("translation", "Translate 'yes' into German.", ("ja",)),
    ("translation", "How do you say 'cheese' in French?", ("fromage",)),
    ("translation", "Translate 'please' into French.", ("s'il vous plaît", "s'il vous plait")),
    ("translation", "What is the Spanish word for 'milk'?", ("leche",)),
]

SETS = {"main": QUESTIONS, "heldout": HELDOUT, "fresh": FRESH}

NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def is_right(question: str, answer: str, accepted: tuple[str, ...]) -> bool:
    text = answer.strip().lower()
    if accepted[0][0].isdigit():
        asked = [n.replace(",", "").rstrip(".") for n in NUMBER.findall(question)]
        numbers = [n.replace(",", "").rstrip(".") for n in NUMBER.findall(text)]
        fresh = []
        for n in numbers:  # the question's numbers, restated, each once ("81 / 9 = 9")
            if n in asked:
                asked.remove(n)
            else:
                fresh.append(n)
        if fresh and fresh[0] in {a.replace(",", "") for a in accepted if a[0].isdigit()}:
            return True
        words = [a for a in accepted if not a[0].isdigit()]
        return bool(words) and not fresh and any(
            re.search(rf"\b{re.escape(w)}\b", text[:200]) for w in words)
    head = text[:200]
    return any(re.search(rf"(?<!\w)(?<!\w'){re.escape(a)}(?!\w)(?!'\w)", head)
               for a in accepted)


@dataclass
class Result:
    config: str
    kind: str
    question: str
    answer: str
    right: bool
    seconds: float


def previous(source: Any, *, arithmetic: bool | None = None) -> Any:
    """Profiles as they were before examples and the calculator's arithmetic (system prompt
    and greedy sampling only); with ``arithmetic=True``, the calculator without examples."""
    from dataclasses import replace

    def profile_for(user_id: int, model: str) -> Any:
        profile, capabilities = source(user_id, model)
        return replace(profile, examples=None, arithmetic=arithmetic), capabilities

    return profile_for


async def run_config(config: str, home: Path, max_tokens: int, repeats: int,
                     verbose: bool, questions: list[tuple[str, str, tuple[str, ...]]]
                     ) -> list[Result]:
    from openwen.chat.service import ChatService
    from openwen.config import load_settings
    from openwen.server.app.state import WebState
    from openwen.tools.shared import SharedTools

    settings = load_settings(home=str(home / config), n_ctx=4096).settings
    service = ChatService(settings)
    state = WebState(settings=settings, service=service, save_interval=0.5)
    state.tools = SharedTools(settings)
    await state.tools.start()
    state.startup()
    chat = state.chat
    if config == "before":
        chat.profiles = None  # today's defaults: no profile
    elif config == "previous":
        chat.profiles = previous(chat.profiles)
    elif config == "calculator":
        chat.profiles = previous(chat.profiles, arithmetic=True)
    results: list[Result] = []
    user = state.storage.users.create(f"bench-{config}", None)
    try:
        for _ in range(repeats):
            for kind, question, accepted in questions:
                chat_settings: dict[str, object] = {"max_tokens": max_tokens}
                if config == "after-tools":
                    chat_settings["tools"] = True
                conversation = state.storage.conversations.create(user.id, settings=chat_settings)
                started = time.perf_counter()
                turn = await chat.send(user.id, conversation.id, question)
                ended = await turn.wait()
                seconds = time.perf_counter() - started
                answer = ended.message.content if ended.message else ""
                right = is_right(question, answer, accepted)
                results.append(Result(config, kind, question, answer, right, seconds))
                if verbose:
                    mark = "ok " if right else "BAD"
                    print(f"  [{config}] {mark} {question!r} -> {answer[:90]!r}", flush=True)
    finally:
        await chat.aclose()
        await state.tools.aclose()
        await service.aclose()
        state.close()
    return results


def report(results: list[Result], repeats: int, questions: list[tuple[str, str, tuple[str, ...]]],
           name: str) -> None:
    configs = list(dict.fromkeys(r.config for r in results))
    kinds = list(dict.fromkeys(k for k, _, _ in questions))
    header = f"{'config':<12} {'right':>10} " + " ".join(f"{k:>12}" for k in kinds) + "  s/answer"
    print(header)
    for config in configs:
        mine = [r for r in results if r.config == config]
        right = sum(r.right for r in mine)
        per_kind = []
        for kind in kinds:
            of_kind = [r for r in mine if r.kind == kind]
            per_kind.append(f"{sum(r.right for r in of_kind)}/{len(of_kind)}")
        seconds = sum(r.seconds for r in mine) / max(1, len(mine))
        print(f"{config:<12} {right:>4}/{len(mine):<5} " + " ".join(f"{p:>12}" for p in per_kind)
              + f"  {seconds:.2f}")
    print(f"(set {name}: {len(questions)} questions x {repeats} repeat(s); load average "
          f"{os.getloadavg()[0]:.1f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="before,after,after-tools")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--sets", default="main,heldout",
                        help="main, heldout, fresh (comma-separated)")
    parser.add_argument("--every", type=int, default=1,
                        help="only every N-th question (a quick subset while iterating)")
    args = parser.parse_args()
    for name in args.sets.split(","):
        if name not in SETS:
            parser.error(f"unknown set {name!r}")
        questions = SETS[name][::args.every]
        results: list[Result] = []
        with tempfile.TemporaryDirectory(prefix="openwen-everyday-") as tmp:
            for config in args.configs.split(","):
                if config not in ("before", "previous", "calculator", "after", "after-tools"):
                    parser.error(f"unknown configuration {config!r}")
                results += asyncio.run(run_config(config, Path(tmp), args.max_tokens,
                                                  args.repeats, not args.quiet, questions))
        report(results, args.repeats, questions, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
