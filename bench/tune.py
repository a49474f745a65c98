"""Fine-tuning benchmark: 100 examples x 3 epochs on the bundled SmolLM2-135M, on the CPU.

Runs the real pipeline the way ``openwen tune create`` does (a job queued in a fresh home, the
runner as a separate process) and reports: wall time from queueing to the published derivative,
the training phase alone, the runner's peak memory (max RSS from ``/proc``), and the held-out
loss of the base and of the derivative. Targets: under 5 minutes and under 4 GiB.

    .venv/bin/python bench/tune.py [--examples 100] [--epochs 3] [--threads 2] [--max-seconds 600]

Bounded: past ``--max-seconds`` the job is cancelled and the run reports how far it got (steps,
seconds per step, and the full run's time extrapolated from them, marked as such).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CITIES = ["Lisbon", "Oslo", "Quito", "Hanoi", "Accra", "Lima", "Riga", "Perth", "Kyoto", "Cork"]
THINGS = ["bicycle", "teapot", "violin", "lantern", "kite", "compass", "umbrella", "telescope"]


def dataset(n: int, seed: int = 0) -> str:
    """``n`` chats in a made-up house style: every answer starts with 'Certainly, friend:'."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        city, thing = rng.choice(CITIES), rng.choice(THINGS)
        q = f"Where can I buy a {thing} in {city}?"
        a = (f"Certainly, friend: in {city}, look for a {thing} at the old market near the "
             f"station, and ask for the {thing} maker by name.")
        rows.append(json.dumps({"messages": [{"role": "user", "content": q},
                                             {"role": "assistant", "content": a}]}))
    return "\n".join(rows) + "\n"


def peak_rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-seconds", type=float, default=600)
    args = parser.parse_args()
    load_start = os.getloadavg()[0]

    home = Path(tempfile.mkdtemp(prefix="openwen-bench-tune-"))
    data = home / "style.jsonl"
    data.write_text(dataset(args.examples))
    env = {**os.environ, "OPENWEN_HOME": str(home), "OPENWEN_N_THREADS": str(args.threads)}
    openwen = [sys.executable, "-m", "openwen"]
    start = time.perf_counter()
    subprocess.run([*openwen, "tune", "create", "--base", "smollm2", "--data", str(data),
                    "--name", "bench-style", "--epochs", str(args.epochs)],
                   env=env, check=True, capture_output=True)
    status_path = home / "tune" / "jobs" / "bench-style" / "status.json"
    peak = 0
    train_start = train_end = None
    status: dict = {}
    while True:
        time.sleep(0.25)
        try:
            status = json.loads(status_path.read_text())
        except (OSError, ValueError):
            continue
        if status.get("pid"):
            peak = max(peak, peak_rss_kib(status["pid"]))
        if status.get("phase") == "training" and train_start is None:
            train_start = time.perf_counter() - status.get("elapsed_s", 0)
        if status.get("phase") == "evaluating derivative" and train_end is None:
            train_end = time.perf_counter()
        if status.get("state") in ("done", "failed", "cancelled", "interrupted"):
            break
        if time.perf_counter() - start > args.max_seconds:
            subprocess.run([*openwen, "tune", "cancel", "bench-style"], env=env,
                           capture_output=True)
            partial(status, time.perf_counter() - start, peak, load_start, args)
            return
    total = time.perf_counter() - start
    if status.get("state") != "done":
        sys.exit(f"the job ended {status.get('state')}: {status.get('error')}")
    ev = status["eval"]
    load = os.getloadavg()[0]
    print(f"examples {args.examples} x epochs {args.epochs}, {args.threads} threads, "
          f"{status['total_steps']} steps, {status.get('train_tokens')} training tokens/epoch")
    print(f"wall time (queue -> published): {total:.1f} s   (target < 300 s)")
    if train_start and train_end:
        print(f"training phase: {train_end - train_start:.1f} s, "
              f"{status['tokens_per_s']:.0f} tokens/s")
    print(f"runner peak RSS: {peak / 2**20:.2f} GiB   (target < 4 GiB)")
    print(f"held-out loss: base {ev['base_loss']:.3f} -> derivative {ev['derivative_loss']:.3f} "
          f"(perplexity {ev['base_perplexity']:.2f} -> {ev['derivative_perplexity']:.2f}, "
          f"{ev['heldout_examples']} examples)")
    print(f"load average (1 min): {load_start:.2f} at the start, {load:.2f} at the end")


def partial(status: dict, elapsed: float, peak: int, load_start: float,
            args: argparse.Namespace) -> None:
    """What a run cut short by ``--max-seconds`` measured."""
    step, total = status.get("step", 0), status.get("total_steps")
    print(f"STOPPED after {elapsed:.0f} s (--max-seconds), in phase {status.get('phase')!r}: "
          f"step {step} of {total or '?'}, load {status.get('load_s', 0):.1f} s")
    if step and total:
        per_step = status["elapsed_s"] / step
        print(f"training: {per_step:.1f} s per step, {status['tokens_per_s']:.0f} tokens/s; "
              f"all {total} steps would take about {per_step * total:.0f} s (extrapolated)")
    print(f"runner peak RSS so far: {peak / 2**20:.2f} GiB   (target < 4 GiB)")
    print(f"load average (1 min): {load_start:.2f} at the start, "
          f"{os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
