"""Prefix reuse and cold prefill through the HTTP API: openwen vs llama.cpp's llama-server.

Each server runs the bundled SmolLM2-135M on the same threads with an 8,192-token context, one at
a time (each alone on the machine). Per server, over ``/v1/chat/completions`` (streamed, greedy):

1. cold: a ~4,000-token conversation the server has never seen; time to first token (TTFT);
2. another user's ~800-token conversation runs in between;
3. next turn: the first conversation plus its answer and a new question; TTFT.

Servers: ``openwen serve`` (batched engine) and llama.cpp's ``llama-server -np 8`` (its defaults:
``-b 2048 -ub 512``, flash attention auto; what it really used is read from its log and printed)
if a binary is found (``--llama-server PATH``, or one built by ``--build-llama-server``, see
``servers.py``); ``--with-llama-cpp-python`` adds llama-cpp-python's server, which keeps only
the last prompt's state, so step 2 costs it the whole history. With ``--rounds N`` every server
is started afresh N times, in turn (round 1 of each, then round 2; a new chat each round), and
the best cold and next-turn TTFT count.

``--batches 2048/512,512/512`` runs one openwen side per ``n_batch/n_ubatch`` (``openwen
2048/512``, ...; OPENWEN_N_BATCH / OPENWEN_N_UBATCH), in the same rounds, so the settings are
compared with each other and with llama-server in one run; without it openwen runs its defaults.

Printed: cold TTFT / next-turn TTFT per server (target for openwen: >= 20x) and openwen's speed
over llama-server's (llama-server TTFT / openwen TTFT) for the cold prefill (target >= 0.98x)
and the next turn. For openwen the server is then restarted on the same data folder and the
conversation continues once more: its state was written under ``<home>/kvcache`` at shutdown, so
that turn does not re-read the history either.

    .venv/bin/python bench/prefix.py [--threads 2] [--history 4000] [--rounds 1]
        [--only openwen|llama-server|llama_cpp.server] [--llama-server PATH]
        [--build-llama-server] [--with-llama-cpp-python] [--omp-spin]
        [--batches N_BATCH/N_UBATCH,...]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers import (  # noqa: E402
    Stream,
    add_server_options,
    llama_cpp_server,
    llama_server,
    llama_server_binary,
    llama_server_params,
    machine,
    omp_policy,
    openwen_server,
    stream_chat,
)

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


TOPICS = ["garden", "orchard", "greenhouse", "allotment"]


def session(url: str, history: int, round_: int = 0
            ) -> tuple[dict[str, Stream], list[dict[str, str]]]:
    chat = [*conversation(TOPICS[round_ % len(TOPICS)], history),
            {"role": "user", "content": "Which bed needs water most often?"}]
    runs: dict[str, Stream] = {}
    runs["cold"] = asyncio.run(turn(url, chat))
    show("cold (never seen)", runs["cold"])
    other = [*conversation(f"kitchen {round_}", history // 5),
             {"role": "user", "content": "What should I cook tonight?"}]
    show("another conversation in between", asyncio.run(turn(url, other)))
    chat = follow(chat, runs["cold"], "And which plant gave the most last season?")
    runs["next"] = asyncio.run(turn(url, chat))
    show("next turn", runs["next"])
    return runs, follow(chat, runs["next"], "Thanks. Anything to plant next week?")


def openwen_session(home: Path, args: argparse.Namespace, round_: int,
                    extra: dict[str, str] | None = None) -> dict[str, Stream]:
    with openwen_server(home, threads=args.threads, n_ctx=N_CTX, extra=extra) as url:
        runs, resume = session(url, args.history, round_)
    print("    (server restarted on the same data folder)", flush=True)
    with openwen_server(home, threads=args.threads, n_ctx=N_CTX, extra=extra) as url:
        runs["restart"] = asyncio.run(turn(url, resume))
        show("next turn after a restart", runs["restart"])
    return runs


Side = Callable[[int], dict[str, Stream]]


def sides(args: argparse.Namespace, tmp: Path) -> dict[str, Side]:
    """The servers to measure, each as a function of the round that runs one session."""
    model = bundled_model_path()
    found: dict[str, Side] = {}
    for batch in args.batches.split(",") if args.batches else []:
        n_batch, n_ubatch = batch.split("/")
        env = {"OPENWEN_N_BATCH": n_batch, "OPENWEN_N_UBATCH": n_ubatch}
        found[f"openwen {batch}"] = (
            lambda r, env=env, batch=batch: openwen_session(
                tmp / f"home-{batch.replace('/', '-')}-{r}", args, r, env))
    if not found:
        found["openwen"] = lambda r: openwen_session(tmp / f"home{r}", args, r)
    binary = llama_server_binary(args)
    if binary is not None:
        def llama(r: int) -> dict[str, Stream]:
            if r == 0:  # started once with a verbose log, only to read what it uses
                with llama_server(binary, model, tmp / "params", threads=args.threads,
                                  n_ctx=N_CTX, batch=None, verbose=True):
                    pass
                print(f"    llama-server uses: {llama_server_params(tmp / 'params')}",
                      flush=True)
            with llama_server(binary, model, tmp / f"llama-server{r}", threads=args.threads,
                              n_ctx=N_CTX, batch=None) as url:
                return session(url, args.history, r)[0]

        found["llama-server"] = llama
    if args.with_llama_cpp_python:
        def python_server(r: int) -> dict[str, Stream]:
            with llama_cpp_server(model, tmp, threads=args.threads, n_ctx=N_CTX) as url:
                return session(url, args.history, r)[0]

        found["llama_cpp.server"] = python_server
    return {k: v for k, v in found.items() if not args.only or k.split()[0] == args.only}


def best(runs: list[dict[str, Stream]]) -> dict[str, Stream]:
    """Per figure, the round with the shortest TTFT."""
    return {key: min((r[key] for r in runs if key in r), key=lambda s: s.ttft)
            for key in runs[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--history", type=int, default=4000, help="tokens of the long chat")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--batches", help="openwen sides by n_batch/n_ubatch, e.g. 2048/512,512/512")
    add_server_options(ap)
    args = ap.parse_args()
    omp_policy(args.omp_spin)
    every: dict[str, list[dict[str, Stream]]] = {}
    with tempfile.TemporaryDirectory(prefix="openwen-bench-") as tmp:
        found = sides(args, Path(tmp))
        for r in range(args.rounds):
            for name, side in found.items():
                print(f"{name}, round {r + 1}/{args.rounds}:", flush=True)
                every.setdefault(name, []).append(side(r))
            print(f"  round {r + 1} done; {machine()}", flush=True)
    report({k: best(v) for k, v in every.items()}, every, args)


def report(results: dict[str, dict[str, Stream]], every: dict[str, list[dict[str, Stream]]],
           args: argparse.Namespace) -> None:
    print(f"\nprefix reuse: SmolLM2-135M Q4_1, {args.threads} threads, n_ctx {N_CTX}, "
          f"~{args.history}-token chat, best of {args.rounds}; {datetime.date.today()}; "
          f"{machine()}")
    print(f"{'server':<20}{'cold TTFT':>12}{'next turn':>12}{'ratio':>9}{'after restart':>18}")
    for name, runs in results.items():
        cold, warm = runs["cold"].ttft, runs["next"].ttft
        restart = (f"{runs['restart'].ttft * 1000:7.0f} ms ({cold / runs['restart'].ttft:.0f}x)"
                   if "restart" in runs else "")
        print(f"{name:<20}{cold * 1000:9.0f} ms{warm * 1000:9.0f} ms{cold / warm:8.1f}x"
              f"{restart:>18}")
        if args.rounds > 1:
            print(f"{'':<20}all rounds: cold "
                  + ", ".join(f"{r['cold'].ttft * 1000:.0f}" for r in every[name])
                  + " ms; next " + ", ".join(f"{r['next'].ttft * 1000:.0f}" for r in every[name])
                  + " ms")
    ls = results.get("llama-server")
    for name, ow in results.items():
        if not name.startswith("openwen"):
            continue
        if ls:
            cold, warm = ls["cold"].ttft / ow["cold"].ttft, ls["next"].ttft / ow["next"].ttft
            print(f"{name} / llama-server speed (its TTFT / openwen's): cold prefill "
                  f"{cold:.3f}x, next turn {warm:.2f}x")
            print(f"  target cold prefill >= 0.98x llama-server's: {cold:.3f}x "
                  f"{'MET' if cold >= 0.98 else 'NOT MET'}")
        got = ow["cold"].ttft / ow["next"].ttft
        print(f"  {name}: target next-turn TTFT >= 20x faster than cold: {got:.1f}x "
              f"{'MET' if got >= 20 else 'NOT MET'}")


if __name__ == "__main__":
    main()
