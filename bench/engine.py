"""Decode tokens/s and time to first token: openwen's embedded engine vs raw llama-cpp-python.

Same model file, threads, context and prompt, one process, runs interleaved (raw, openwen, raw, ...)
so that machine noise hits both. Both decode greedily for a fixed number of tokens with the KV cache
cleared before every run, so each run pays the full prompt.

    .venv/bin/python bench/engine.py [--rounds 5] [--tokens 128] [--threads 2]

``--wait-policy`` measures instead how threads and OpenMP's wait policy behave on a quiet and on a
loaded machine: for each policy (OpenMP's default spin-then-sleep, ``OMP_WAIT_POLICY=PASSIVE``,
``ACTIVE``) and thread count, a fresh process (the policy is read when llama.cpp's OpenMP runtime
loads) reads a 512-token prompt and decodes ``--tokens`` tokens with llama.cpp, once alone and once
next to ``--burners`` CPU burners (busy loops that end by themselves after the run); the last row is
the server's default, spinning threads with openwen's thread tuner choosing the count each step:

    .venv/bin/python bench/engine.py --wait-policy [--burners 1] [--rounds 2] [--tokens 128]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from openwen.engines.llama_buffers import llama_cpp_module
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


POLICIES = {"spin (OpenMP default)": None, "PASSIVE": "PASSIVE", "ACTIVE": "ACTIVE"}
BURN_SECONDS = 60


def child_decode(threads: int, adaptive: bool = False, tokens: int = 64) -> None:
    """One measurement in a fresh process: prefill 512 tokens, then decode ``tokens`` greedily;
    with ``adaptive``, openwen's thread tuner picks the count before each step, as the batched
    engine's owner thread does (openwen.engines.threads)."""
    import llama_cpp
    from llama_cpp._internals import LlamaSampler

    from openwen.engines.batch_native import NativeContext, NativeModel
    from openwen.engines.threads import ThreadTuner

    model = NativeModel(bundled_model_path())
    ctx = NativeContext(model, n_cells=2048, n_seq=1, n_batch=512, n_threads=threads)
    tuner = ThreadTuner(ctx.set_threads, threads, adaptive=adaptive)
    prompt = model.tokenize(PROMPT * 4, add_bos=True)[:512]
    ctx.put_run(0, prompt, 0, 0)
    ctx.logits[len(prompt) - 1] = 1
    start = time.perf_counter()
    assert ctx.decode(len(prompt)) == 0
    prefill = len(prompt) / (time.perf_counter() - start)
    chain = LlamaSampler()
    chain.add_greedy()
    token = int(llama_cpp.llama_sampler_sample(chain.sampler, ctx.ctx, len(prompt) - 1))
    start = time.perf_counter()
    for pos in range(len(prompt), len(prompt) + tokens):
        ctx.put(0, token, pos, 0, True)
        tuner.before(1)
        began = time.perf_counter()
        assert ctx.decode(1) == 0
        tuner.after(1, time.perf_counter() - began)
        token = int(llama_cpp.llama_sampler_sample(chain.sampler, ctx.ctx, 0))
    decode = tokens / (time.perf_counter() - start)
    print(json.dumps({"prefill": prefill, "decode": decode, **tuner.describe()}))


def burner(seconds: int) -> subprocess.Popen[bytes]:
    """A busy loop on one core that ends by itself after ``seconds``."""
    code = f"import time\nend = time.time() + {seconds}\nwhile time.time() < end: pass"
    return subprocess.Popen([sys.executable, "-c", code])


# (label, OMP_WAIT_POLICY, threads, adaptive): fixed counts under each policy, then the
# server's default (spin, the configured threads, the tuner on)
ARMS = [(name, policy, threads, False) for name, policy in POLICIES.items() for threads in (1, 2)]
ARMS.append(("spin + tuner (default)", None, 2, True))


def wait_policy(args: argparse.Namespace) -> None:
    results: dict[tuple[str, int, str], list[dict[str, float]]] = {}
    for _ in range(args.rounds):
        for load in ("quiet", "loaded"):
            for name, policy, threads, adaptive in ARMS:
                env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
                if policy:
                    env["OMP_WAIT_POLICY"] = policy
                burners = ([burner(BURN_SECONDS) for _ in range(args.burners)]
                           if load == "loaded" else [])
                command = [sys.executable, __file__, "--child-decode", str(threads),
                           "--tokens", str(args.tokens)] + (["--adaptive"] if adaptive else [])
                try:
                    out = subprocess.run(command, env=env, capture_output=True, text=True,
                                         timeout=BURN_SECONDS, check=True)
                    result = json.loads(out.stdout.strip().splitlines()[-1])
                except subprocess.TimeoutExpired:  # a collapse: counted as nothing done
                    result = {"prefill": 0.0, "decode": 0.0}
                finally:
                    for b in burners:
                        b.kill()
                        b.wait()
                results.setdefault((name, threads, load), []).append(result)
    load_avg = os.getloadavg()
    print(f"wait policy x threads, quiet vs {args.burners} burner(s), best of {args.rounds}, "
          f"{args.tokens} tokens after a 512-token prompt; load {load_avg[0]:.2f} "
          f"{load_avg[1]:.2f} {load_avg[2]:.2f} (0.0: the run took over {BURN_SECONDS} s)")
    print(f"{'policy':<24}{'threads':>8}{'quiet decode':>14}{'loaded decode':>15}"
          f"{'quiet prefill':>15}{'loaded prefill':>16}")
    for name, _, threads, _ in ARMS:
        q = results[(name, threads, "quiet")]
        lo = results[(name, threads, "loaded")]
        print(f"{name:<24}{threads:>8}{max(r['decode'] for r in q):>10.1f} t/s"
              f"{max(r['decode'] for r in lo):>11.1f} t/s"
              f"{max(r['prefill'] for r in q):>11.0f} t/s"
              f"{max(r['prefill'] for r in lo):>12.0f} t/s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--wait-policy", action="store_true",
                    help="measure threads x OpenMP wait policy, quiet and loaded")
    ap.add_argument("--burners", type=int, default=1)
    ap.add_argument("--child-decode", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--adaptive", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_decode:
        child_decode(args.child_decode, args.adaptive, args.tokens)
        return
    if args.wait_policy:
        wait_policy(args)
        return
    Llama = llama_cpp_module().Llama

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
