"""Deterministic row order for training: the batch at step s is a pure function of (seed, s).

Training rows are consumed as a stream of per-epoch permutations, each seeded by
(seed, epoch). Resuming at step s therefore needs only s and the seed, which the checkpoint
stores, and an interrupted run sees exactly the rows the uninterrupted one would have.
"""

from __future__ import annotations

from typing import Iterator

import torch

from tooldiff.activations.store import ActivationStore
from tooldiff.errors import UserError


def split_rows(n_rows: int, eval_rows: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train rows, held-out eval rows): a seeded split of the row indices."""
    if eval_rows >= n_rows:
        raise UserError(f"eval_rows={eval_rows} leaves no training rows out of {n_rows}")
    perm = torch.randperm(n_rows, generator=torch.Generator().manual_seed(seed))
    return perm[eval_rows:].sort().values, perm[:eval_rows].sort().values


class BatchStream:
    """Indices into a row set, `batch_size` at a time, epoch after epoch.

    The permutation is drawn on the CPU (the same order on every device) and moved to `device`
    once per epoch, so a training step on a GPU indexes device memory without a host copy.
    """

    def __init__(self, n_rows: int, batch_size: int, seed: int, device: torch.device | str = "cpu"):
        if n_rows < batch_size:
            raise UserError(f"batch_size={batch_size} exceeds the {n_rows} training rows")
        self.n_rows, self.batch_size, self.seed = n_rows, batch_size, seed
        self.device = torch.device(device)
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n_rows, generator=gen).to(self.device)
        return self._perm

    def indices(self, step: int) -> torch.Tensor:
        start = step * self.batch_size
        epoch, offset = divmod(start, self.n_rows)
        head = self._permutation(epoch)[offset : offset + self.batch_size]
        if len(head) == self.batch_size:
            return head
        tail = self._permutation(epoch + 1)[: self.batch_size - len(head)]
        return torch.cat([head, tail])


def iter_batches(store: ActivationStore, batch_size: int, seed: int = 0, start_step: int = 0,
                 rows: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
    """Endless float32 batches x_BMD of `rows` (default: all rows), starting at `start_step`."""
    rows = torch.arange(store.n_rows) if rows is None else rows
    stream = BatchStream(len(rows), batch_size, seed)
    step = start_step
    while True:
        yield store.rows_float(rows[stream.indices(step)])
        step += 1
