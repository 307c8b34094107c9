"""Which latents fire: TopK per row, BatchTopK over the batch, and AuxK over dead latents.

Every selector returns (idx_BCK, keep_BCK): K candidate latents per row and configuration,
and which of them are kept. Configs stacked together may differ in k: they share the widest
K and mask the slots past their own k (topk returns values sorted, so slot j is j-th best).
"""

from __future__ import annotations

import torch

from tooldiff.crosscoder.ddp import Dist


def _slots_within(k_C: torch.Tensor, width: int) -> torch.Tensor:
    return torch.arange(width, device=k_C.device).view(1, 1, -1) < k_C.view(1, -1, 1)


def topk_select(pre_BCL: torch.Tensor, k_C: torch.Tensor, k_max: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's TopK(ReLU(pre)) per row: the k largest positive pre-activations (k_max = max k_C,
    passed as a Python int so that no step waits for the device)."""
    vals_BCK, idx_BCK = pre_BCL.topk(k_max, dim=-1)
    return idx_BCK, _slots_within(k_C, idx_BCK.shape[-1]) & (vals_BCK > 0)


def batchtopk_select(pre_BCL: torch.Tensor, score_CL: torch.Tensor, k_C: torch.Tensor, n_global: int,
                     dist: Dist, first_width: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """BatchTopK: keep the k·B largest v = ReLU(pre)·score over the whole (global) batch.

    Exact, but computed from per-row candidates: each row offers its top `first_width`·k
    values; the k·B-th largest candidate is the threshold. A row whose every candidate
    passes might hold more, so the width doubles until no row is saturated (or = L).
    Returns the threshold per config too (θ's EMA input: the smallest kept v).
    """
    L = pre_BCL.shape[-1]
    v_BCL = torch.relu(pre_BCL) * score_CL.unsqueeze(0)
    width = min(L, first_width * int(k_C.max()))
    while True:
        cand_BCK, idx_BCK = v_BCL.topk(width, dim=-1)
        thr_C = _global_kth(cand_BCK, k_C, n_global, dist)
        keep_BCK = (cand_BCK >= thr_C.view(1, -1, 1)) & (cand_BCK > 0)
        saturated = bool(keep_BCK[..., -1].any())
        if width == L or not dist.any(saturated):
            return idx_BCK, keep_BCK, thr_C
        width = min(L, 2 * width)


def _global_kth(cand_BCK: torch.Tensor, k_C: torch.Tensor, n_global: int, dist: Dist) -> torch.Tensor:
    thresholds = []
    for c in range(cand_BCK.shape[1]):
        values = dist.all_gather_cat(cand_BCK[:, c].reshape(-1))
        kk = min(int(k_C[c]) * n_global, values.numel())
        thresholds.append(values.topk(kk, sorted=False).values.min())
    return torch.stack(thresholds)


def auxk_select(pre_BCL: torch.Tensor, dead_CL: torch.Tensor, aux_k_C: torch.Tensor,
                width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """AuxK: per row, the aux_k largest positive pre-activations among DEAD latents only (width =
    max aux_k_C, at most L)."""
    masked_BCL = pre_BCL.masked_fill(~dead_CL.unsqueeze(0), float("-inf"))
    vals_BCK, idx_BCK = masked_BCL.topk(width, dim=-1)
    return idx_BCK, _slots_within(aux_k_C, width) & (vals_BCK > 0) & torch.isfinite(vals_BCK)
