"""Per-latent separation statistics, vectorized over latents.

Both take activations f_NL (rows x latents) and a boolean row mask for the positive class.
"""

from __future__ import annotations

import torch

from tooldiff.evaluation import stats


def cohens_d(f_NL: torch.Tensor, positive_N: torch.Tensor) -> torch.Tensor:
    """Cohen's d per latent: (mean_pos - mean_neg) / pooled std; 0 where both classes are constant."""
    pos_PL, neg_QL = f_NL[positive_N].double(), f_NL[~positive_N].double()
    n_pos, n_neg = len(pos_PL), len(neg_QL)
    if n_pos < 2 or n_neg < 2:
        raise ValueError("Cohen's d needs at least two rows in each class")
    pooled_var_L = ((n_pos - 1) * pos_PL.var(0) + (n_neg - 1) * neg_QL.var(0)) / (n_pos + n_neg - 2)
    diff_L = pos_PL.mean(0) - neg_QL.mean(0)
    d_L = diff_L / pooled_var_L.sqrt().clamp_min(1e-12)
    return torch.where(pooled_var_L > 0, d_L, torch.zeros_like(d_L)).float()


def auroc(f_NL: torch.Tensor, positive_N: torch.Tensor) -> torch.Tensor:
    """AUROC per latent, exact with ties (evaluation.stats.auroc), as a float32 tensor."""
    return torch.from_numpy(stats.auroc(f_NL.detach().double().cpu(), positive_N.cpu())).float()


def firing_rate(f_NL: torch.Tensor, rows_N: torch.Tensor) -> torch.Tensor:
    """Share of the selected rows on which each latent is active (> 0)."""
    if int(rows_N.sum()) == 0:
        return torch.full((f_NL.shape[1],), float("nan"))
    return (f_NL[rows_N] > 0).float().mean(0)
