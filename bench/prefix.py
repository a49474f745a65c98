"""Prefix reuse through the HTTP API: the next turn of a long chat after another chat ran.

Both servers run the bundled SmolLM2-135M on the same threads with an 8,192-token context, one at
a time. Per server, over ``/v1/chat/completions`` (streamed, greedy):

1. cold: a ~5,000-token conversation the server has never seen; time to first token (TTFT);
2. another user's ~1,000-token conversation runs in between;
3. next turn: the first conversation plus its answer and a new question; TTFT.

The figure is cold TTFT / next-turn TTFT (target for openwen: >= 20x). llama-cpp-python's server
keeps only the last prompt's state, so step 2 costs it the whole history. For openwen the server is
then restarted on the same data folder and the conversation continues once more: its state was
written under ``<home>/kvcache`` at shutdown, so that turn does not re-read the history either.

    .venv/bin/python bench/prefix.py [--threads 2] [--history 5000] [--only openwen] [--omp-spin]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers import Stream, llama_cpp_server, machine, omp_policy, openwen_server, stream_chat  # noqa: E402,I001

from openwen.models.store import bundled_model_path  # noqa: E402

N_CTX = 8192
CHARS_PER_TOKEN = 3.4  # SmolLM2's tokenizer on these notes (numbers split), roughly
ANSWER_TOKENS = 24
SUBJECTS = ["tomatoes", "roses", "basil", "apple trees", "lavender", "strawberries", "ferns",
            "orchids", "cucumbers", "sunflowers", "mint", "peppers"]


def paragraph(topic: str, i: int) -> str:
    s = SUBJECTS[i % len(SUBJECTS)]
    return (f"Note {i} on {topic}: the {s} in bed {i % 9 + 1} were planted in week {i % 52 + 1}; "
            f"they need water every {i % 5 + 1} days, a little compost each month and about "
            f"{i % 7 + 3} hours of sun. Last season they gave {i * 3 % 40 + 5} kilograms. ")


def conversation(topic: str, tokens: int) -> list[dict[str, str]]:
    """A chat of about ``tokens`` tokens: user notes and short assistant acknowledgements."""
    messages = [{"role": "system", "content": f"You help me keep track of my {topic}."}]
    size, i = 0, 0
    while size < tokens * CHARS_PER_TOKEN:
        notes = "".join(paragraph(topic, i + k) for k in range(4))
        messages += [{"role": "user", "content": notes},
                     {"role": "assistant", "content": f"Noted: entries {i} to {i + 3}."}]
        size += len(notes) + 30
        i += 4
    return messages


async def turn(url: str, messages: list[dict[str, str]]) -> Stream:
    async with httpx.AsyncClient(timeout=900) as client:
        return await stream_chat(client, url, messages, max_tokens=ANSWER_TOKENS)


def follow(messages: list[dict[str, str]], answer: Stream, question: str
           ) -> list[dict[str, str]]:
    return [*messages, {"role": "assistant", "content": answer.text},
            {"role": "user", "content": question}]


def show(label: str, run: Stream) -> None:
    cached = f", {run.cached_tokens} cached" if run.cached_tokens is not None else ""
    prompt = f"{run.prompt_tokens} prompt tokens{cached}" if run.prompt_tokens else ""
    print(f"    {label:<34} TTFT {run.ttft * 1000:9.0f} ms   {prompt}", flush=True)


def session(url: str, history: int) -> tuple[dict[str, Stream], list[dict[str, str]]]:
    chat = [*conversation("garden", history),
            {"role": "user", "content": "Which bed needs water most often?"}]
    runs: dict[str, Stream] = {}
    runs["cold"] = asyncio.run(turn(url, chat))
    show("cold (never seen)", runs["cold"])
    other = [*conversation("kitchen", history // 5),
             {"role": "user", "content": "What should I cook tonight?"}]
    show("another conversation in between", asyncio.run(turn(url, other)))
    chat = follow(chat, runs["cold"], "And which plant gave the most last season?")
    runs["next"] = asyncio.run(turn(url, chat))
    show("next turn", runs["next"])
    return runs, follow(chat, runs["next"], "Thanks. Anything to plant next week?")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--history", type=int, default=5000, help="tokens of the long chat")
    ap.add_argument("--only", choices=["openwen", "llama_cpp"])
    ap.add_argument("--omp-spin", action="store_true", help="keep OpenMP's spinning default")
    args = ap.parse_args()
    omp_policy(args.omp_spin)
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="openwen-bench-") as tmp:
        home = Path(tmp) / "home"
        if args.only != "llama_cpp":
            print("openwen batched:", flush=True)
            with openwen_server(home, threads=args.threads, n_ctx=N_CTX) as url:
                runs, resume = session(url, args.history)
            print("    (server restarted on the same data folder)", flush=True)
            with openwen_server(home, threads=args.threads, n_ctx=N_CTX) as url:
                runs["restart"] = asyncio.run(turn(url, resume))
                show("next turn after a restart", runs["restart"])
            results["openwen batched"] = runs
        if args.only != "openwen":
            print("llama_cpp.server:", flush=True)
            with llama_cpp_server(bundled_model_path(), Path(tmp), threads=args.threads,
                                  n_ctx=N_CTX) as url:
                results["llama_cpp.server"] = session(url, args.history)[0]
    report(results, args)


def report(results: dict[str, dict[str, Stream]], args: argparse.Namespace) -> None:
    print(f"\nprefix reuse: SmolLM2-135M Q4_1, {args.threads} threads, n_ctx {N_CTX}, "
          f"~{args.history}-token chat; {datetime.date.today()}; {machine()}")
    print(f"{'server':<20}{'cold TTFT':>12}{'next turn':>12}{'ratio':>9}{'after restart':>15}")
    for name, runs in results.items():
        cold, warm = runs["cold"].ttft, runs["next"].ttft
        restart = (f"{runs['restart'].ttft * 1000:9.0f} ms ({cold / runs['restart'].ttft:.0f}x)"
                   if "restart" in runs else "")
        print(f"{name:<20}{cold * 1000:9.0f} ms{warm * 1000:9.0f} ms{cold / warm:8.1f}x"
              f"{restart:>15}")
    ow = results.get("openwen batched")
    if ow:
        got = ow["cold"].ttft / ow["next"].ttft
        print(f"target next-turn TTFT >= 20x faster than cold: {got:.1f}x "
              f"{'MET' if got >= 20 else 'NOT MET'}")


if __name__ == "__main__":
    main()
