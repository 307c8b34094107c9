"""Independent study jobs side by side: a small dependency graph run over spawned processes.

The matrix ran its pipelines, positive controls, emergence and headroom runs one after another,
each on one torch thread (threads.py: the organism-sized models run fastest on one thread per
process), so a 2-core machine sat half idle for an hour. Most of those jobs need only files that
already exist: the real pair's pipeline and the null pairs' do not wait for each other. Here each
job is a top-level function with its arguments and the names of the jobs it waits for; up to
`workers` run at once, each in its own spawned process (no fork of a threaded parent) on one
thread, with its terminal output in its own log file. The parent shows one progress bar and says
when each job starts and ends; the first failure stops the rest and names the job and its log.

A job's result comes back by value (it must pickle); what a job writes to disk is its artifact,
atomic and resumable as it would be in one process, so an interrupted run resumes job by job.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Iterator

from tooldiff.errors import UserError
from tooldiff.progress import new_progress, say


@dataclass(frozen=True)
class Job:
    """One unit of work: `fn(*args)` once every job named in `after` has finished."""

    name: str
    fn: Callable[..., Any]  # a module-level function (it crosses the process boundary)
    args: tuple = ()
    after: tuple[str, ...] = ()
    log: Path | None = None  # its terminal output (default: none kept)
    cost: float = 1.0  # its expected seconds, relative to the others': only the start order reads it


@dataclass(frozen=True)
class Done:
    """A finished job: what `fn` returned, and its wall and CPU seconds in its process."""

    value: Any
    wall_s: float
    cpu_s: float


@dataclass
class _Plan:
    waiting: dict[str, Job]
    done: dict[str, Done] = field(default_factory=dict)

    def ready(self) -> list[Job]:
        """The jobs whose dependencies are done, the longest path first (its own cost and the
        costliest chain waiting behind it; ties in list order): a long job or chain started last
        leaves the other workers idle at the end (the matrix's emergence -> headroom)."""
        ready = [j for j in self.waiting.values() if all(a in self.done for a in j.after)]
        return sorted(ready, key=lambda j: -_path(j, self.waiting))


def _path(job: Job, jobs: dict[str, Job]) -> float:
    """The cost of `job` and of the costliest chain of jobs waiting, one after another, behind it."""
    return job.cost + max((_path(j, jobs) for j in jobs.values() if job.name in j.after), default=0.0)


def check_graph(jobs: list[Job]) -> None:
    """Names unique, every dependency a job of the list, no cycle (else no job could start)."""
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        raise UserError(f"job names repeat: {sorted(n for n in set(names) if names.count(n) > 1)}")
    for job in jobs:
        if missing := [a for a in job.after if a not in names]:
            raise UserError(f"job {job.name} waits for jobs that do not exist: {missing}")
    waiting, done = {j.name: j for j in jobs}, set()  # not _Plan.ready: its ordering walks the chains
    while ready := [n for n, j in waiting.items() if all(a in done for a in j.after)]:
        for name in ready:
            done.add(name)
            del waiting[name]
    if waiting:
        raise UserError(f"these jobs wait for each other in a cycle: {sorted(waiting)}")


def run_jobs(jobs: list[Job], workers: int) -> dict[str, Done]:
    """Run the graph with at most `workers` jobs at once; returns each job's Done by name.
    workers == 1 runs every job in this process, in order (no spawn: what tests and a debugger want)."""
    check_graph(jobs)
    if workers < 1:
        raise UserError(f"workers must be at least 1, got {workers}")
    plan = _Plan({j.name: j for j in jobs})
    with new_progress() as bar:
        task = bar.add_task("jobs", total=len(jobs))
        if workers == 1:
            while ready := plan.ready():
                job = ready[0]
                say(f"job {job.name}: started")
                plan.done[job.name] = _timed(job.fn, job.args)
                del plan.waiting[job.name]
                bar.advance(task)
            return plan.done
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_one_thread) as pool:
            running: dict[Future, Job] = {}
            try:
                while plan.waiting or running:
                    for job in plan.ready():
                        if job not in running.values() and len(running) < workers:
                            say(f"job {job.name}: started" + (f" (log: {job.log})" if job.log else ""))
                            running[pool.submit(_in_child, job.fn, job.args, job.log)] = job
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        job = running.pop(future)
                        plan.done[job.name] = _result(job, future)
                        del plan.waiting[job.name]
                        say(f"job {job.name}: done in {plan.done[job.name].wall_s:.0f} s")
                        bar.advance(task)
            except BaseException:
                for future in running:
                    future.cancel()
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    return plan.done


def _result(job: Job, future: Future) -> Done:
    try:
        return future.result()
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - the job and its log are what the user needs
        where = f"; see {job.log}" if job.log else ""
        raise RuntimeError(f"job {job.name} failed: {type(e).__name__}: {e}{where}") from e


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _timed(fn: Callable[..., Any], args: tuple) -> Done:
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn(*args)
    return Done(value, round(time.perf_counter() - wall, 1), round(time.process_time() - cpu, 1))


def _in_child(fn: Callable[..., Any], args: tuple, log: Path | None) -> Done:
    """A job in a worker process: its stdout and stderr go to its log (or nowhere) while it runs."""
    with output_to(Path(log) if log else Path(os.devnull)):
        return _timed(fn, args)


@contextmanager
def output_to(log: Path) -> Iterator[None]:
    """This process's stdout and stderr (the file descriptors: C libraries' too) appended to
    `log` for the length of the block, then back where they were."""
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
