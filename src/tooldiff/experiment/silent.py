"""Which (condition, prompt) pairs need no generation: the edit is exactly the identity there.

Steering or ablating latents at the last prompt token adds `(α-1)·f·d` or `-f·d` to that one
position; where every chosen latent is silent (f = 0) this adds exact zeros, so the row's
generation IS the `none` generation of the same model on the same prompt, bit for bit. Most
latents are silent on most prompts (TopK keeps k of D), so most rows of the steer, ablate and
unrelated-control conditions are copies of `none`.

The activations are read here from a separate forward pass, whose rounding may differ from the
generation batch's by ~1e-6. So a latent counts as silent only with a margin: its
pre-activation must sit clearly below the point where it would fire (0, the k-th largest
pre-activation under TopK, or θ under BatchTopK). A latent near its threshold is generated.
"""

from __future__ import annotations

import torch

from tooldiff.crosscoder import Crosscoder
from tooldiff.experiment.conditions import Condition

# Margin, relative to the row's pre-activation scale, far above float32 rounding between batchings.
MARGIN = 1e-3
SKIPPABLE_OPS = ("steer", "ablate")  # ops whose edit is exactly 0 where the latents are silent


@torch.no_grad()
def surely_silent(cc: Crosscoder, h_ND: torch.Tensor, model: int, latents: list[int]) -> torch.Tensor:
    """silent_NS: latent S is 0 in `cc.encode_single(h, model)` with a margin to spare."""
    pre_NL = cc.preactivation_single(h_ND.to(cc.b_enc_L.device), model)
    margin_N1 = MARGIN * (1 + pre_NL.abs().amax(1, keepdim=True))
    index_S = torch.tensor(latents, device=pre_NL.device)
    pre_NS = pre_NL.index_select(1, index_S)
    fires_at_NS = torch.zeros_like(pre_NS)  # ReLU: a latent fires above 0
    sparsity = cc.cfg.sparsity
    if sparsity == "topk" or (sparsity == "batchtopk" and float(cc.theta) <= 0):
        kth_N1 = torch.relu(pre_NL).topk(cc.cfg.k, dim=1).values[:, -1:]
        fires_at_NS = fires_at_NS.maximum(kth_N1)
    elif sparsity == "batchtopk":
        score_S = cc.batchtopk_score_L().index_select(0, index_S)
        # fires where pre * score > θ; a latent with score 0 never fires
        fires_at_NS = fires_at_NS.maximum((cc.theta / score_S.clamp_min(1e-12)).expand_as(pre_NS))
    return (pre_NS < fires_at_NS - margin_N1).cpu()


def skippable(cond: Condition) -> bool:
    """Only latent steer / ablate at the last prompt token: one position, edited by f·d."""
    return bool(cond.specs) and all(s.op in SKIPPABLE_OPS and s.vector is None and s.feature
                                    and s.positions == "last_prompt" for s in cond.specs)


def silent_rows(cond: Condition, h_ND: torch.Tensor, cc: Crosscoder, model_index: int) -> list[bool]:
    """Per prompt: True where the condition's edit is exactly the identity (a copy of `none`)."""
    if not skippable(cond):
        return [False] * h_ND.shape[0]
    silent_N = torch.ones(h_ND.shape[0], dtype=torch.bool)
    for spec in cond.specs:
        silent_N &= surely_silent(cc, h_ND, model_index, list(spec.feature)).all(1)
    return silent_N.tolist()
