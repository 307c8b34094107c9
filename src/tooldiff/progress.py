"""One progress-bar and stage-timing style for every stage (stderr: stdout stays clean for scripts)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True)


def new_progress(transient: bool = False) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=transient)


@contextmanager
def progress_bar(label: str, total: int, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """Yields `advance(n)`; a no-op when disabled (the server generates silently)."""
    if not enabled:
        yield lambda n: None
        return
    with new_progress(transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


@contextmanager
def stage(name: str, timings: dict[str, float]) -> Iterator[None]:
    """A titled pipeline stage whose wall time lands in `timings[name]` (seconds)."""
    console.rule(f"[bold]{name}")
    start = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - start, 1)
    console.print(f"[green]{name}[/] done in {timings[name]} s")


def say(message: str) -> None:
    console.print(message, highlight=False)
