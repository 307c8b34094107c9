"""The generation engine: a queue, a dynamic batcher and one worker thread.

Requests become `Job`s. The worker takes the oldest waiting job, waits up to
`batch_wait_ms` for more jobs it can share a forward pass with (same sampling settings; any
steering, any length), and runs them as one left-padded batch through the shared generation
loop (`tooldiff.interventions.generate_completions`) with one steering list per row, bound when
the request was admitted (steering.py) and run as it was bound. Jobs that
arrive while a batch runs wait for the next one; more than `max_queue` waiting jobs are
refused (`QueueFull`, a 503).

Per row, through the loop's `on_token` / `adjust_logits` hooks: the job's own max_tokens,
stop strings, deadline and cancellation end its row early, streamed text is pushed to the
client as it grows, and tool_choice "none" bans the call-opening token.

Only the worker thread touches the model (steering hooks live on it while a batch runs), so
work that reads the model without generating (the live panel's per-token activations) is a
`Probe`: queued like a job, run alone between batches, its return value handed back.
Results go back to the asyncio side through `loop.call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from tooldiff.errors import UserError
from tooldiff.interventions import generate_completions
from tooldiff.serve.model import ServedModel
from tooldiff.serve.steering import Steering

log = logging.getLogger("tooldiff.serve")


class QueueFull(Exception):
    """More jobs wait than the server accepts."""


@dataclass
class JobResult:
    text: str  # generated text (special tokens skipped, cut at a stop string)
    completion_tokens: int
    finish_reason: str  # stop | length | timeout | cancelled | error
    error: Optional[str] = None


@dataclass
class Job:
    prompt: str
    prompt_tokens: int
    steering: Steering
    max_tokens: int
    temperature: float
    top_p: float
    seed: Optional[int]
    stop: tuple[str, ...]
    banned_token_ids: tuple[int, ...]
    deadline: float  # time.monotonic() by which the job must be done
    stream: bool
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    token_ids: list[int] = field(default_factory=list)
    text: str = ""
    ended: Optional[str] = None  # why the engine ended the row early
    cancelled: bool = False

    @property
    def batch_key(self) -> tuple:
        """Jobs with equal keys can share a batch: the sampler is set per batch."""
        return ("greedy",) if self.temperature == 0 else ("sample", self.temperature, self.top_p)

    def cancel(self) -> None:
        """Called from the asyncio side (timeout, client gone): the worker drops the row."""
        self.cancelled = True

    def emit(self, kind: str, payload: Any) -> None:
        """Hand an event to the request's coroutine (thread-safe)."""
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, payload))
        except RuntimeError:  # the loop is closed: the client is long gone
            pass


@dataclass
class Probe:
    """A function that needs the model but is no generation: run alone on the worker thread.
    Its event is ("done", value), ("error", exception), or ("done", JobResult) when it was
    dropped (cancelled, timed out, server stopping)."""

    fn: Callable[[], Any]
    deadline: float
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: bool = False

    @property
    def batch_key(self) -> tuple:
        return ("probe", id(self))  # shares its turn with nothing

    cancel = Job.cancel
    emit = Job.emit


class Engine:
    def __init__(self, served: ServedModel, max_batch_size: int, batch_wait_ms: float, max_queue: int):
        self.served = served
        self.max_batch_size, self.max_queue = max_batch_size, max_queue
        self.batch_wait_s = batch_wait_ms / 1000.0
        self._pending: deque[Job] = deque()
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.running_rows = 0
        self.stats = {"batches": 0, "rows": 0, "largest_batch": 0, "tokens": 0, "rejected": 0, "errors": 0}

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stopping.clear()
            self._thread = threading.Thread(target=self._work, name="tooldiff-engine", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._cond:
            for job in self._pending:
                job.emit("done", JobResult("", 0, "error", "the server is shutting down"))
            self._pending.clear()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def queued(self) -> int:
        return len(self._pending)

    # --- the asyncio side ------------------------------------------------------------------
    def submit(self, job: Job) -> None:
        with self._cond:
            self._drop_cancelled()
            if len(self._pending) >= self.max_queue:
                self.stats["rejected"] += 1
                raise QueueFull(f"the server is busy: {len(self._pending)} requests are waiting (cap {self.max_queue})")
            self._pending.append(job)
            self._cond.notify_all()

    # --- the worker ------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stopping.is_set():
            batch = self._next_batch()
            if batch:
                self._run(batch)

    def _drop_cancelled(self) -> None:
        for job in [j for j in self._pending if j.cancelled or time.monotonic() > j.deadline]:
            self._pending.remove(job)
            job.emit("done", JobResult("", 0, "cancelled" if job.cancelled else "timeout"))

    def _next_batch(self) -> list[Job]:
        with self._cond:
            while not self._stopping.is_set():
                self._drop_cancelled()
                if self._pending:
                    break
                self._cond.wait(0.25)
            if self._stopping.is_set():
                return []
            key = self._pending[0].batch_key
            window_end = time.monotonic() + self.batch_wait_s
            while True:
                batch = [j for j in self._pending if j.batch_key == key][: self.max_batch_size]
                remaining = window_end - time.monotonic()
                if len(batch) >= self.max_batch_size or remaining <= 0 or self._stopping.is_set():
                    break
                self._cond.wait(remaining)
            for job in batch:
                self._pending.remove(job)
            return batch

    def _run(self, batch: list[Job]) -> None:
        if isinstance(batch[0], Probe):
            self._probe(batch[0])
            return
        self.running_rows = len(batch)
        self.stats["batches"] += 1
        self.stats["rows"] += len(batch)
        self.stats["largest_batch"] = max(self.stats["largest_batch"], len(batch))
        try:
            completions = self._generate(batch)
        except Exception as e:  # a bug: fail this batch, keep serving
            log.exception("generation failed for a batch of %d", len(batch))
            self.stats["errors"] += 1
            for job in batch:
                job.emit("done", JobResult("", len(job.token_ids), "error", f"generation failed: {type(e).__name__}"))
            return
        finally:
            self.running_rows = 0
        for job, completion in zip(batch, completions):
            if not job.ended and completion.finish_reason == "length":
                job.ended = "length"
            if not (job.stream or job.stop):  # text was not tracked token by token
                job.text = self.served.decode(job.token_ids)
            self.stats["tokens"] += len(job.token_ids)
            job.emit("done", JobResult(job.text, len(job.token_ids), job.ended or "stop"))

    def _probe(self, probe: Probe) -> None:
        try:
            probe.emit("done", probe.fn())
        except Exception as e:  # a UserError (bad input found late) or a bug: the request fails, the engine goes on
            if not isinstance(e, UserError):
                log.exception("a probe failed")
                self.stats["errors"] += 1
            probe.emit("error", e)

    def _generate(self, batch: list[Job]) -> list:
        served = self.served
        first = batch[0]
        steering = [list(j.steering) for j in batch]
        seeds = None
        if first.temperature > 0:
            seeds = [j.seed if j.seed is not None else secrets.randbits(62) for j in batch]
        banned = [torch.tensor(j.banned_token_ids, dtype=torch.long) if j.banned_token_ids else None for j in batch]

        def on_token(row: int, token: int) -> bool:
            return self._on_token(batch[row], token)

        def adjust_logits(rows: list[int], logits_BV: torch.Tensor) -> torch.Tensor:
            for b, row in enumerate(rows):
                if banned[row] is not None:
                    logits_BV[b, banned[row].to(logits_BV.device)] = float("-inf")
            return logits_BV

        return generate_completions(
            served.model, served.tokenizer, [j.prompt for j in batch],
            interventions=steering if any(steering) else None,
            crosscoder=served.crosscoder, model_index=served.model_index,
            max_new_tokens=max(j.max_tokens for j in batch), batch_size=len(batch),
            temperature=first.temperature, top_p=first.top_p, seed=seeds, progress=False,
            on_token=on_token, adjust_logits=adjust_logits if any(b is not None for b in banned) else None,
        )

    def _on_token(self, job: Job, token: int) -> bool:
        """Record one new token of `job`; True ends its row."""
        if job.ended:
            return True
        job.token_ids.append(token)
        if job.stream or job.stop:
            self._update_text(job)
        if job.ended:  # a stop string
            return True
        if job.cancelled:
            job.ended = "cancelled"
        elif time.monotonic() > job.deadline:
            job.ended = "timeout"
        elif len(job.token_ids) >= job.max_tokens:
            job.ended = "length"
        return job.ended is not None

    def _update_text(self, job: Job) -> None:
        text = self.served.decode(job.token_ids)
        cuts = [text.find(s, max(0, len(job.text) - len(s))) for s in job.stop]
        cuts = [c for c in cuts if c >= 0]
        if cuts:
            text, job.ended = text[: min(cuts)], "stop"
        if text != job.text:
            job.text = text
            if job.stream:
                job.emit("text", text)
