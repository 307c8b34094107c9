"""Data parallelism over `torch.distributed` (gloo on CPU), for `torchrun ... train`.

Each rank takes a contiguous slice of every global batch; parameters stay replicated
because every rank applies the same summed gradient. The few quantities that depend on the
whole batch (the BatchTopK threshold, AuxK's residual variance, which latents fired) are
reduced explicitly, so the result matches a single process up to float summation order.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as tdist

from tooldiff.errors import UserError


def is_main_process() -> bool:
    """Rank 0 under torchrun (from the environment, so it works after the group is closed)."""
    return int(os.environ.get("RANK", "0")) == 0


class Dist:
    def __init__(self, rank: int = 0, world: int = 1):
        self.rank, self.world = rank, world

    @classmethod
    def from_env(cls) -> "Dist":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        if not tdist.is_available():
            raise UserError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
        if not tdist.is_initialized():
            tdist.init_process_group(backend="gloo")
        return cls(tdist.get_rank(), tdist.get_world_size())

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def local_slice(self, n_global: int) -> slice:
        if n_global % self.world:
            raise UserError(f"batch_size={n_global} must be divisible by the {self.world} processes")
        per = n_global // self.world
        return slice(self.rank * per, (self.rank + 1) * per)

    def all_reduce_sum(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        """Sum over ranks, in one coalesced message."""
        if self.world == 1:
            return tensors
        flat = torch.cat([t.reshape(-1).to(torch.float64) for t in tensors])
        tdist.all_reduce(flat)
        out, at = [], 0
        for t in tensors:
            out.append(flat[at : at + t.numel()].view(t.shape).to(t.dtype))
            at += t.numel()
        return out

    def all_reduce_grads_(self, params: list[torch.Tensor]) -> None:
        if self.world == 1:
            return
        grads = [p.grad for p in params if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        tdist.all_reduce(flat)
        at = 0
        for g in grads:
            g.copy_(flat[at : at + g.numel()].view_as(g))
            at += g.numel()

    def all_gather_cat(self, t: torch.Tensor) -> torch.Tensor:
        if self.world == 1:
            return t
        parts = [torch.empty_like(t) for _ in range(self.world)]
        tdist.all_gather(parts, t.contiguous())
        return torch.cat(parts)

    def any(self, flag: bool) -> bool:
        if self.world == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0])
        tdist.all_reduce(t)
        return bool(t.item() > 0)

    def barrier(self) -> None:
        if self.world > 1:
            tdist.barrier()

    def close(self) -> None:
        if self.world > 1 and tdist.is_initialized():
            tdist.destroy_process_group()
