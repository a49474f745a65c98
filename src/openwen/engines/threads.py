"""Thread count that follows the machine: all configured threads while the cores are free, one
thread while other processes take them.

llama.cpp splits every evaluation over its threads and waits for the slowest at each barrier.
On a quiet machine two threads on two cores decode ~1.5x faster than one; when another process
takes a core, a descheduled thread stalls every barrier and the step can take ten times longer
than with one thread, which never waits for a peer (bench/README.md, "Busy machines"). No fixed
setting serves both, and load averages lag and count llama.cpp's own threads, so the tuner
measures instead: the engine's owner thread times each evaluation and, now and then, evaluates a
few steps with the other thread count, then a few with the current one again, and keeps whichever
was faster on evaluations of the same size.

A probe is judged only against the current count's steps right after it, never against a
running average: a step's cost grows with the context its sequences attend to (SmolLM2-135M: a
one-token step at 4,000 tokens of context takes ~3x one at 1,000), so an average kept while a long
conversation decoded made a probe during a short one look 3x faster and switched to one thread
for nothing; the next turn of the long conversation was then read on one thread, twice as slow
(bench/README.md, "Why the next turn doubled with n_batch 2048").

Probes back off while the choice holds (the first after 8 steps, then every 32 after a switch,
doubling to at most every 1,024), so on a quiet machine they cost well under 1%; a sudden
slow-down of the current choice (another process starting) probes at once.

Probes run on small evaluations only (at most ``PROBE_MAX_TOKENS`` tokens: decode steps): a
prompt chunk of hundreds of tokens evaluated on the slower count would cost a cold prefill as much
as thousands of decode-step probes (4 steps of 512 tokens on one thread: about 3 s more of a
~4,000-token prompt on this 2-core machine). Large evaluations use the count the small ones chose,
are timed all the same, and a run of slow ones probes at the next small step.

Nor do probes run on a step that reads any prompt tokens, however few (``prompt=True``): a short
prompt's whole prefill is one such step, and evaluating it on the slower count delays that
request's first token by the probe's cost (a 45-token prompt: ~145 ms on two threads here, about
1.5x that on one). Probes wait for the next decode-only step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

START_INTERVAL = 8  # steps before the first probe of a new engine
FIRST_INTERVAL = 32  # steps between probes after a switch
MAX_INTERVAL = 1024  # ... doubling up to this while the choice holds
PROBE_STEPS = 4  # steps evaluated with the other count; the first only wakes its threads
CHECK_STEPS = 4  # then steps with the current count to compare with; the first wakes it again
MARGIN = 0.85  # the other count must take at most this fraction of the current one's time
ALPHA = 0.25  # weight of a new step time in the running average
JUMP = 2.0  # a step this many times the average ...
JUMPS = 3  # ... this many times in a row probes at once
PROBE_MAX_TOKENS = 64  # larger evaluations (prompt chunks) are never probe steps


def size_class(n_tokens: int) -> int:
    """Evaluations are compared with others of about the same size: 1, 2, 3-4, 5-8, ... tokens."""
    return max(1, n_tokens).bit_length()


@dataclass
class ThreadTuner:
    """Chooses, before each evaluation, how many threads llama.cpp uses for it.

    ``apply(n)`` sets the context's thread count (it runs on the owner thread, between steps).
    Call :meth:`before` ahead of each evaluation and :meth:`after` with its duration.
    """

    apply: Callable[[int], None]
    threads: int
    adaptive: bool = True  # False: always ``threads``
    current: int = 0
    interval: int = START_INTERVAL
    switches: int = 0
    probes: int = 0
    _since: int = 0
    _probe_left: int = 0
    _check_left: int = 0
    _jumps: int = 0
    _applied: int = 0
    _times: dict[tuple[int, int], float] = field(default_factory=dict)  # for jumps only
    _probed: list[tuple[int, float]] = field(default_factory=list)  # (size, s) other count
    _checked: list[tuple[int, float]] = field(default_factory=list)  # ... current count after

    def __post_init__(self) -> None:
        self.current = self.threads
        self._applied = self.threads

    @property
    def enabled(self) -> bool:
        return self.adaptive and self.threads > 1

    @property
    def other(self) -> int:
        return 1 if self.current != 1 else self.threads

    def before(self, n_tokens: int, prompt: bool = False) -> None:
        """Pick the thread count for an evaluation of ``n_tokens`` tokens (``prompt``: some of
        them are a prompt being read, so a request waits for its first token on this step)."""
        if not self.enabled:
            return
        if n_tokens > PROBE_MAX_TOKENS or prompt:
            self._set(self.current)
            return
        probing = self._probe_left or self._check_left
        if not probing and (self._since >= self.interval or self._jumps >= JUMPS):
            self._probe_left = PROBE_STEPS
            self._jumps = 0
            self.probes += 1
            self._probed.clear()  # a probe measures the machine as it is now
            self._checked.clear()
        self._set(self.other if self._probe_left else self.current)

    def after(self, n_tokens: int, seconds: float, prompt: bool = False) -> None:
        """Record how long the evaluation just made took (``prompt`` as given to ``before``)."""
        if not self.enabled:
            return
        size = size_class(n_tokens)
        key = (self._applied, size)
        if self._probe_left and n_tokens <= PROBE_MAX_TOKENS and not prompt:
            self._probe_left -= 1
            if self._probe_left < PROBE_STEPS - 1:  # the first probe step only wakes threads
                self._probed.append((size, seconds))
            if self._probe_left == 0:
                self._check_left = CHECK_STEPS
            return
        if self._check_left and n_tokens <= PROBE_MAX_TOKENS and not prompt:
            self._check_left -= 1
            if self._check_left < CHECK_STEPS - 1:  # ... nor does the first step back
                self._checked.append((size, seconds))
            if self._check_left == 0:
                self._decide(size)
            return
        self._since += 1
        mean = self._times.get(key)
        self._jumps = self._jumps + 1 if mean is not None and seconds > JUMP * mean else 0
        self._average(key, seconds)

    def _average(self, key: tuple[int, int], seconds: float) -> None:
        mean = self._times.get(key)
        self._times[key] = seconds if mean is None else mean + ALPHA * (seconds - mean)

    def _decide(self, size: int) -> None:
        """After the check: switch if the other count beat the current one on steps of the same
        size; with none of that size on both sides, try again after the same interval."""
        theirs = [s for n, s in self._probed if n == size]
        mine = [s for n, s in self._checked if n == size]
        self._since = 0
        if theirs and mine and _mean(theirs) < MARGIN * _mean(mine):
            self.current = self.other
            self.switches += 1
            self.interval = FIRST_INTERVAL
        elif theirs and mine:
            self.interval = min(MAX_INTERVAL, self.interval * 2)
        self._set(self.current)

    def _set(self, n: int) -> None:
        if n != self._applied:
            self.apply(n)
            self._applied = n

    def describe(self) -> dict[str, int]:
        """For /metrics and the benches: the count in use, switches and probes so far."""
        return {"threads": self.current, "switches": self.switches, "probes": self.probes}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)
