"""One torch thread for the organism-sized models.

Their matmuls are too small for a second OpenMP thread to pay, and on a shared machine a thread
that spin-waits for a busy core made crosscoder training and generation 4-8x slower (measured in
benchmarks/demo_time.py, which reports CPU beside wall seconds).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
