"""Decode tokens/s and time to first token: openwen's embedded engine vs raw llama-cpp-python.

Same model file, threads, context and prompt, one process, runs interleaved (raw, openwen, raw, ...)
so that machine noise hits both. Both decode greedily for a fixed number of tokens with the KV cache
cleared before every run, so each run pays the full prompt.

    .venv/bin/python bench/engine.py [--rounds 5] [--tokens 128] [--threads 2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from openwen.engines.llamacpp import LlamaCppEngine
from openwen.messages import Done, Message, TextDelta
from openwen.models.store import bundled_model_path
from openwen.requests import ChatRequest, Sampling

VISIBLE: list[float] = []  # openwen: call to the first visible text delta
PROMPT = ("You are a helpful assistant. Explain in detail, step by step, how a bicycle works, "
          "covering the frame, wheels, gears, chain, brakes and the physics of balance. " * 3)


def raw_run(llm: Any, text: str, add_bos: bool, n: int) -> tuple[float, float]:
    """(ttft seconds, decode tokens/s) for raw llama-cpp-python ``generate`` on the same rendered
    prompt text, tokenised the same way openwen does (special tokens parsed)."""
    llm.reset()
    start = time.perf_counter()
    toks = llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)
    first = 0.0
    count = 0
    for _ in llm.generate(toks, temp=0.0, top_k=1, reset=True):
        count += 1
        if count == 1:
            first = time.perf_counter()
        if count >= n:
            break
    end = time.perf_counter()
    return first - start, (count - 1) / (end - first)


async def openwen_run(engine: LlamaCppEngine, request: ChatRequest) -> tuple[float, float]:
    """(ttft seconds, decode tokens/s); ttft = call to the first sampled token, as for raw."""
    engine.worker.call(engine._llm.reset)
    start = time.perf_counter()
    first_text = 0.0
    done: Done | None = None
    async for event in engine.stream(request):
        if isinstance(event, TextDelta) and not first_text:
            first_text = time.perf_counter()
        if isinstance(event, Done):
            done = event
    end = time.perf_counter()
    assert done is not None
    first = start + done.timings.ttft_ms / 1000
    VISIBLE.append(first_text - start)
    return first - start, (done.usage.completion_tokens - 1) / (end - first)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    from llama_cpp import Llama

    path = bundled_model_path()
    engine = LlamaCppEngine(path, name="smollm2", n_ctx=2048, n_threads=args.threads)
    raw = Llama(model_path=str(path), n_ctx=2048, n_threads=args.threads,
                n_threads_batch=args.threads, n_batch=512, verbose=False)
    request = ChatRequest(messages=(Message("user", PROMPT),), max_tokens=args.tokens,
                          sampling=Sampling(temperature=0.0, top_k=1), stop=())
    text = engine.render(request).text
    tokens = engine.tokenize(text)
    add_bos = len(tokens) > len(raw.tokenize(text.encode(), add_bos=False, special=True))
    assert raw.tokenize(text.encode(), add_bos=add_bos, special=True) == tokens
    # openwen stops at end-of-generation; raw runs the same number of tokens openwen produced.
    results: dict[str, list[tuple[float, float]]] = {"raw": [], "openwen": []}
    asyncio.run(openwen_run(engine, request))  # warm-up
    raw_run(raw, text, add_bos, 8)
    for _ in range(args.rounds):
        results["raw"].append(raw_run(raw, text, add_bos, args.tokens))
        results["openwen"].append(asyncio.run(openwen_run(engine, request)))
    report(results, len(tokens), args)
    asyncio.run(engine.aclose())


def report(results: dict[str, list[tuple[float, float]]], n_prompt: int,
           args: argparse.Namespace) -> None:
    med = {k: (statistics.median(t for t, _ in v), statistics.median(r for _, r in v))
           for k, v in results.items()}
    print(f"prompt {n_prompt} tokens, {args.tokens} generated, {args.threads} threads, "
          f"{args.rounds} rounds (median)")
    for name, (ttft, rate) in med.items():
        print(f"  {name:8s} ttft {ttft * 1000:8.1f} ms   decode {rate:7.1f} tok/s")
    print(f"  openwen first visible text {statistics.median(VISIBLE) * 1000:8.1f} ms")
    print(f"decode ratio openwen/raw: {med['openwen'][1] / med['raw'][1]:.3f} (target >= 0.97)")
    print(f"ttft overhead: {(med['openwen'][0] - med['raw'][0]) * 1000:+.1f} ms (target <= 5 ms)")


if __name__ == "__main__":
    main()
