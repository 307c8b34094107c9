"""What the terminal shows: one progress-bar and stage-timing style for every stage (stderr:
stdout stays clean for scripts), and nothing from the libraries a user did not ask for.

Libraries draw their own bars and print warnings the user did not cause (transformers'
"Loading weights" and "Writing model shards" bars on every load and save). `library_quiet()`
hides them at our call sites only, for the length of the call, never with a global filter that
would also hide real problems elsewhere; `tooldiff --verbose` (TOOLDIFF_VERBOSE=1, inherited by
worker processes) shows everything.
"""

from __future__ import annotations

import os
import time
import warnings
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


VERBOSE_ENV = "TOOLDIFF_VERBOSE"


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV) == "1"


@contextmanager
def library_quiet(*hidden: tuple[type[Warning], str]) -> Iterator[None]:
    """For one call of ours into a library: no transformers progress bars, and no warning of the
    (category, message regex) pairs in `hidden` (ones the user did not cause). Restored after."""
    if verbose():
        yield
        return
    from transformers.utils import logging as hf_logging

    bars_were_on = hf_logging.is_progress_bar_enabled()
    if bars_were_on:
        hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            for category, message in hidden:
                warnings.filterwarnings("ignore", message=message, category=category)
            yield
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
