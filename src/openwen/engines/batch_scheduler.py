"""Continuous batching: one owner thread runs the step loop over one llama.cpp context.

Each step builds one ``llama_batch``: one token for every sequence that is generating, plus a chunk
of the prompts still being read (at most ``prefill_chunk`` tokens while others generate, so they do
not stall; the whole ``n_batch`` when nobody waits). One ``llama_decode`` evaluates it, then each
sequence with an output samples its next token with its own sampler chain and turns it into events.
Between steps, cancelled requests leave (their generated cells are freed at once, their prompt stays
cached), waiting requests are admitted while a slot and enough cells are free, and while anything
runs, idle sequences move out of the live cache (:mod:`openwen.engines.kv_prefix`). Events are
handed to the consumers' event loops once per step.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from openwen import stage_trace
from openwen.engines.batch_native import NativeContext, NativeModel
from openwen.engines.batch_sampling import Candidates, JobSampler, greedy_tokens
from openwen.engines.decoding import OutputDecoder
from openwen.engines.kv_prefix import PrefixCache
from openwen.engines.kv_slots import Slot
from openwen.engines.threads import ThreadTuner
from openwen.errors import EngineError, OverloadedError
from openwen.messages import Done, FinishReason, Timings, Usage

log = logging.getLogger(__name__)

END = object()  # the last item a job's queue receives


@dataclass(eq=False)
class Job:
    """One request on its way through the batch."""

    tokens: list[int]
    budget: int  # completion tokens allowed
    reserve: int  # cells to have free beyond the prompt when admitting
    chain: JobSampler  # the request's sampler (batch_sampling)
    decoder: OutputDecoder
    loop: asyncio.AbstractEventLoop
    out: asyncio.Queue[Any]
    tag: str = ""  # salt tag of the request's cache_salt
    accepted: float = field(default_factory=time.perf_counter)
    slot: Slot | None = None
    fed: int = 0  # prompt tokens in the cache
    cached: int = 0  # of which were reused
    cache_source: str = "none"
    next_token: int = -1  # sampled, to be evaluated next step; -1 while reading the prompt
    n_out: int = 0
    cancelled: bool = False
    admitted: float = 0.0
    first: float = 0.0
    stages: stage_trace.Stages | None = None  # when tracing (openwen.stage_trace)


def _eog_lookup(model: NativeModel) -> Callable[[int], bool]:
    """``is_eog`` as a set lookup (end-of-generation tokens are few and fixed)."""
    eog = frozenset(t for t in range(model.n_vocab) if model.is_eog(t))
    return eog.__contains__


def _deliver(items: list[tuple[asyncio.Queue[Any], Any]]) -> None:
    for queue, item in items:
        queue.put_nowait(item)


class BatchScheduler:
    """Owns the context; admits, steps and finishes jobs. Thread-safe ``submit``/``cancel``."""

    def __init__(self, name: str, model: NativeModel, ctx: NativeContext, cache: PrefixCache, *,
                 max_queue: int = 16, prefill_chunk: int = 256, adaptive_threads: bool = False):
        self.name = name
        self.model = model
        self.ctx = ctx
        self.cache = cache
        self.max_queue = max_queue
        self.prefill_chunk = max(1, min(prefill_chunk, ctx.n_batch))
        self.progress_tokens = 0  # completion tokens of the job that produced the last token
        self.last_cancelled_tokens = 0  # completion tokens of the last cancelled job
        self.steps = 0
        self.busy_seconds = 0.0  # owner thread's time in the step loop (not waiting for work)
        self.decode_seconds = 0.0  # of which inside llama_decode
        self.grammar_tokens = 0  # tokens sampled under a grammar, by requests that left
        self.grammar_rejections = 0  # of which the grammar turned down the first pick
        # fewer threads while other processes take the cores (openwen.engines.threads)
        self.threads = ThreadTuner(ctx.set_threads, ctx.n_threads, adaptive=adaptive_threads)
        self._candidates = Candidates(ctx.n_vocab)
        self._is_eog = _eog_lookup(model)
        self._cond = threading.Condition()
        self._pending: deque[Job] = deque()
        self._calls: deque[tuple[Callable[[], Any], dict[str, Any], threading.Event]] = deque()
        self._running: list[Job] = []
        self._closing = False
        self._outbox: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Queue[Any], Any]]] = {}
        self._traced: list[stage_trace.Stages] = []  # jobs with events in the outbox
        self._thread = threading.Thread(target=self._run, name=f"openwen-batch-{name}",
                                        daemon=True)
        self._thread.start()

    # -- any thread ------------------------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        """Requests waiting plus those running."""
        return len(self._pending) + len(self._running)

    @property
    def running(self) -> int:
        return len(self._running)

    def submit(self, job: Job) -> None:
        with self._cond:
            if self._closing:
                raise EngineError(f"model '{self.name}' is shutting down")
            if len(self._pending) >= self.max_queue:
                raise OverloadedError(
                    f"model '{self.name}' has {len(self._pending)} requests waiting; retry shortly"
                )
            self._pending.append(job)
            self._cond.notify()

    def cancel(self, job: Job) -> None:
        job.cancelled = True
        with self._cond:
            self._cond.notify()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the owner thread between steps and wait for it."""
        done = threading.Event()
        box: dict[str, Any] = {}
        with self._cond:
            if not self._thread.is_alive():
                raise EngineError(f"model '{self.name}' is closed")
            self._calls.append((fn, box, done))
            self._cond.notify()
        done.wait()
        if "error" in box:
            raise box["error"]
        return box.get("value")

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout=60)

    # -- owner thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            clock = time.perf_counter
            while self._wait_for_work():
                start = clock()
                self._trace("woke", self._pending)
                self._drop_cancelled()
                self._run_calls()
                self._admit()
                if self._running:
                    self.cache.offload_idle()  # idle cells would slow every step down
                    self._trace("offloaded", self._running)
                    self._step()
                self._flush()
                self.busy_seconds += clock() - start
        except BaseException:
            log.exception("batch scheduler %s crashed", self.name)
        finally:
            self._shutdown()

    def _wait_for_work(self) -> bool:
        with self._cond:
            while not (self._closing or self._running or self._pending or self._calls):
                self._cond.wait()
            return not self._closing

    def _run_calls(self) -> None:
        while self._calls:
            with self._cond:
                fn, box, done = self._calls.popleft()
            try:
                box["value"] = fn()
            except BaseException as exc:  # handed to the caller
                box["error"] = exc
            finally:
                done.set()

    def _drop_cancelled(self) -> None:
        for job in [j for j in self._running if j.cancelled]:
            self.last_cancelled_tokens = job.n_out
            self._leave(job, keep=len(job.tokens))  # the prompt stays cached, the answer goes
        if any(j.cancelled for j in self._pending):
            with self._cond:
                gone = [j for j in self._pending if j.cancelled]
                self._pending = deque(j for j in self._pending if not j.cancelled)
            for job in gone:
                job.chain.close()

    def _admit(self) -> None:
        while True:
            with self._cond:
                job = self._pending[0] if self._pending else None
            if job is None:
                return
            reserve = max(0, min(job.reserve, self.cache.table.ledger.capacity - len(job.tokens)))
            # cells the running requests will still take for their prompts are spoken for
            reserve += sum(len(j.tokens) - j.fed for j in self._running)
            try:
                lease = None if job.cancelled else self.cache.acquire(job.tokens, reserve, job.tag)
            except Exception as exc:
                log.exception("could not place a request in the KV cache")
                with self._cond:
                    self._pending.popleft()
                self._fail(job, exc)
                continue
            if lease is None and not job.cancelled and self._running:
                return  # wait for a running request to free a slot or cells
            with self._cond:
                self._pending.popleft()
            if job.cancelled:  # possibly while being placed
                if lease is not None:
                    self.cache.release(lease.slot)
                job.chain.close()
                continue
            if lease is None:
                self._fail(job, EngineError("no KV cache slot could be freed for this request"))
                continue
            job.slot, job.fed, job.cached = lease.slot, lease.n_keep, lease.n_keep
            job.cache_source = lease.source
            job.admitted = time.perf_counter()
            stage_trace.mark("admitted", job.stages)
            self._running.append(job)

    def _step(self) -> None:
        ctx = self.ctx
        decoding = [j for j in self._running if j.next_token >= 0]
        prefilling = [j for j in self._running if j.next_token < 0]
        want = 0
        if prefilling:
            cap = ctx.n_batch - len(decoding)
            if decoding:
                cap = min(cap, self.prefill_chunk)
            want = min(cap, sum(len(j.tokens) - j.fed for j in prefilling))
        if not self.cache.make_room(len(decoding) + want):
            decoding, want = self._squeeze(decoding, want)
        outputs: list[tuple[Job, int]] = []
        i = 0
        for job in decoding:
            slot = job.slot
            assert slot is not None
            ctx.put(i, job.next_token, len(slot.tokens), slot.seq_id, True)
            outputs.append((job, i))
            i += 1
        fed: list[tuple[Job, int]] = []
        for job in prefilling:
            if want <= 0:
                break
            slot = job.slot
            assert slot is not None
            k = min(want, len(job.tokens) - job.fed)
            ctx.put_run(i, job.tokens[job.fed : job.fed + k], job.fed, slot.seq_id)
            i += k
            want -= k
            if job.fed + k == len(job.tokens):
                ctx.logits[i - 1] = 1
                outputs.append((job, i - 1))
            fed.append((job, k))
        if i == 0:  # no cell free for any prompt token: give up on the youngest request
            self._fail(prefilling[-1], EngineError("the KV cache is full; retry shortly"))
            return
        self.threads.before(i, prompt=bool(fed))  # no probe while a prompt waits (threads.py)
        self._trace("eval_start", self._running)
        started = time.perf_counter()
        rc = ctx.decode(i)
        seconds = time.perf_counter() - started
        self._trace("eval_end", self._running)
        self.threads.after(i, seconds, prompt=bool(fed))
        self.decode_seconds += seconds
        self.steps += 1
        if rc != 0:
            self._decode_failed(rc, decoding + [j for j, _ in fed])
            return
        table = self.cache.table
        for job in decoding:
            table.append(job.slot, [job.next_token])  # type: ignore[arg-type]
        for job, k in fed:
            table.append(job.slot, job.tokens[job.fed : job.fed + k])  # type: ignore[arg-type]
            job.fed += k
        self._sample_all(outputs)

    def _squeeze(self, decoding: list[Job], want: int) -> tuple[list[Job], int]:
        """Too few free cells for this step: shrink the prompt chunk, then end the youngest
        generating requests ("length": the shared cache is full)."""
        free = self.cache.table.free_cells
        while len(decoding) > free:
            job = decoding.pop()
            log.warning("kv cache full: ending a request after %d tokens", job.n_out)
            self._finish(job, "length")
        return decoding, max(0, min(want, free - len(decoding)))

    def _sample_all(self, outputs: list[tuple[Job, int]]) -> None:
        """Sample every output of the step: greedy rows in one numpy call, the others with their
        own samplers (:mod:`openwen.engines.batch_sampling`)."""
        logits = self.ctx.output_logits(len(outputs))
        greedy = [row for row, (job, _) in enumerate(outputs)
                  if job.chain.greedy and not job.cancelled]
        tokens = dict(zip(greedy, greedy_tokens(logits, greedy), strict=True)) if greedy else {}
        ctx = self.ctx.ctx
        for row, (job, index) in enumerate(outputs):
            if job.cancelled:
                continue
            try:
                token = tokens.get(row)
                if token is None:
                    token = job.chain.sample(ctx, index, logits[row], self._candidates)
                self._sampled(job, token, index)
            except Exception as exc:  # one request's failure is not the batch's
                log.exception("request failed while sampling")
                self._fail_running(job, exc)

    def _sampled(self, job: Job, token: int, index: int) -> None:
        if not job.first:
            job.first = time.perf_counter()
            stage_trace.mark("first_token", job.stages)
        if self._is_eog(token):
            self._finish(job, "stop")
            return
        job.n_out += 1
        self.progress_tokens = job.n_out
        decoder = job.decoder
        logits = self.ctx.logits_at(index) if decoder.logprobs is not None else None
        for event in decoder.add(token, logits):
            self._emit(job, event)
        if decoder.stopped:
            self._finish(job, "stop")
        elif job.n_out >= job.budget:
            self._finish(job, "length")
        else:
            job.next_token = token

    def _finish(self, job: Job, finish: FinishReason) -> None:
        for event in job.decoder.finish():
            self._emit(job, event)
        if finish == "stop" and job.decoder.tool_call_count:
            finish = "tool_calls"
        end = time.perf_counter()
        first = job.first or end
        self._emit(job, Done(
            finish_reason=finish,
            usage=Usage(prompt_tokens=len(job.tokens), completion_tokens=job.n_out,
                        cached_tokens=job.cached),
            timings=Timings(queue_ms=(job.admitted - job.accepted) * 1000,
                            prompt_ms=(first - job.admitted) * 1000,
                            decode_ms=(end - first) * 1000,
                            ttft_ms=(first - job.accepted) * 1000),
            stop_sequence=job.decoder.stop_sequence if finish == "stop" else None,
        ))
        self._emit(job, END)
        self._leave(job)

    def _leave(self, job: Job, keep: int | None = None) -> None:
        if job in self._running:
            self._running.remove(job)
        if job.slot is not None:
            self.cache.release(job.slot, keep)
            job.slot = None
        if job.chain.grammar is not None:
            self.grammar_tokens += job.n_out
            self.grammar_rejections += job.chain.rejections
        job.chain.close()

    def _decode_failed(self, rc: int, jobs: list[Job]) -> None:
        if rc == 1 and self.cache.table.lru_idle():
            for slot in self.cache.table.lru_idle():
                self.cache.evict(slot)  # retried next step with the cells those held
            return
        log.error("llama_decode returned %d for %d sequences", rc, len(jobs))
        error = EngineError(f"llama.cpp failed to evaluate the batch (code {rc})")
        for job in jobs:
            self._fail_running(job, error)

    def _fail_running(self, job: Job, exc: BaseException) -> None:
        """End a running job with an error; its sequence's cells go, whatever they hold."""
        held = job.slot
        self._fail(job, exc)
        if held is not None:
            self.cache.table.clear(held)

    def _fail(self, job: Job, exc: BaseException) -> None:
        self._emit(job, exc)
        self._emit(job, END)
        self._leave(job, keep=0)

    def _emit(self, job: Job, item: Any) -> None:
        if not job.cancelled:
            self._outbox.setdefault(job.loop, []).append((job.out, item))
            if job.stages is not None:
                self._traced.append(job.stages)

    def _trace(self, stage: str, jobs: Any) -> None:
        """Mark ``stage`` for each job being traced (:mod:`openwen.stage_trace`)."""
        if stage_trace.enabled():
            try:
                for job in tuple(jobs):
                    stage_trace.mark(stage, job.stages)
            except RuntimeError:  # the pending queue changed under us: a mark missed
                pass

    def _flush(self) -> None:
        if not self._outbox:
            return
        outbox, self._outbox = self._outbox, {}
        for loop, items in outbox.items():
            try:
                loop.call_soon_threadsafe(_deliver, items)
            except RuntimeError:  # that event loop is closed: nobody is listening
                pass
        if self._traced:
            for stages in self._traced:
                stage_trace.mark("flushed", stages)
            self._traced = []

    def _shutdown(self) -> None:
        with self._cond:
            self._closing = True
            pending, self._pending = list(self._pending), deque()
            calls, self._calls = list(self._calls), deque()
        for job in [*pending, *self._running]:
            self._fail(job, EngineError(f"model '{self.name}' was unloaded"))
        self._flush()
        for _, box, done in calls:
            box["error"] = EngineError(f"model '{self.name}' is closed")
            done.set()
        try:
            self.cache.save_all()
        except Exception:
            log.exception("kv cache: could not save states on close")
        self.ctx.close()
