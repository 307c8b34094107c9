"""Per-latent separation statistics, vectorized over latents.

Both take activations f_NL (rows x latents) and a boolean row mask for the positive class.
"""

from __future__ import annotations

import torch


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
    """AUROC per latent = P(score_pos > score_neg) + 0.5 P(tie), exact with ties.

    Sparse latents are mostly 0, so ties are the rule, not the exception; a rank-based
    formula that ignores them would be badly biased.
    """
    pos_LP = f_NL[positive_N].T.contiguous().double()
    neg_LQ = f_NL[~positive_N].T.contiguous().double().sort(dim=1).values
    if pos_LP.shape[1] == 0 or neg_LQ.shape[1] == 0:
        raise ValueError("AUROC needs rows of both classes")
    below_LP = torch.searchsorted(neg_LQ, pos_LP, side="left")
    below_or_tie_LP = torch.searchsorted(neg_LQ, pos_LP, side="right")
    wins_L = (below_LP + 0.5 * (below_or_tie_LP - below_LP)).sum(1)
    return (wins_L / (pos_LP.shape[1] * neg_LQ.shape[1])).float()


def firing_rate(f_NL: torch.Tensor, rows_N: torch.Tensor) -> torch.Tensor:
    """Share of the selected rows on which each latent is active (> 0)."""
    if int(rows_N.sum()) == 0:
        return torch.full((f_NL.shape[1],), float("nan"))
    return (f_NL[rows_N] > 0).float().mean(0)
