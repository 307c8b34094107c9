"""Torch CPU thread counts for the organism-sized models.

One thread is the default: their matmuls are too small for a second OpenMP thread to pay during
generation, and on a shared machine a thread that waits for a busy core made crosscoder training
and generation 4-8x slower (measured in benchmarks/demo_time.py, which reports CPU beside wall
seconds). Pretraining the default base and its RL are the exceptions: on an idle 2-core machine
a second thread ran pretraining steps 1.7x faster and GRPO steps 1.5x faster (20 steps: 46 s
against 30 s), and with the other core busy pretraining ran 2x slower, so the caller who knows
what else runs chooses (`tooldiff organism --threads`).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def one_thread():
    return torch_threads(1)
