"""Non-crosscoder directions: the rival baselines and the control panel.

- difference of means (CAA/ASA style) in raw activation space of one model;
- random directions with a given norm, from a seeded generator.
"""

from __future__ import annotations

import torch


def diff_of_means(x_ND: torch.Tensor, positive_N: torch.Tensor) -> torch.Tensor:
    """mean(x | positive) - mean(x | negative): the CAA/ASA steering vector."""
    if int(positive_N.sum()) == 0 or int((~positive_N).sum()) == 0:
        raise ValueError("difference of means needs rows of both classes")
    return x_ND[positive_N].float().mean(0) - x_ND[~positive_N].float().mean(0)


def model_shift(x_NMD: torch.Tensor, rows_N: torch.Tensor) -> torch.Tensor:
    """mean(RL) - mean(base) on the selected rows: the 'what RL changed' direction (A=0, B=1)."""
    return x_NMD[rows_N, 0].float().mean(0) - x_NMD[rows_N, 1].float().mean(0)


def random_directions(n: int, d: int, norm: float, seed: int) -> torch.Tensor:
    """n Gaussian directions scaled to `norm` each (the equal-norm control panel)."""
    g = torch.Generator().manual_seed(seed)
    v_ND = torch.randn(n, d, generator=g)
    return v_ND / v_ND.norm(dim=1, keepdim=True) * norm
