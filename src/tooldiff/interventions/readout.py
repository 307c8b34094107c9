"""Read the chosen latents' activations f_NS from raw hidden states, at every steered token.

`Crosscoder.encode_single` is the reference: normalize, encode all latents, apply the sparsity
rule. Steering at `generated` / `all` positions reads latents once per token, where that takes
a dozen small tensor ops; this reader computes the same f_NS in a few, with what can be
prepared once at bind time prepared then (small vectors only: the encoder is never copied):

- the normalization (h - mean) / scale is folded into the bias and the matmul's scale factor;
- ReLU (L1) and a trained BatchTopK (threshold θ > 0) decide latent by latent, so only the
  chosen latents are encoded;
- TopK needs each row's k-th largest pre-activation over every latent, so it encodes all of the
  model's latents (the others' pre-activation is their bias, a constant), then reads just the
  chosen columns; no dense activation tensor is built. A latent that ties exactly with the k-th
  value counts as active (torch's topk would pick among the ties).

tests/test_interventions_ops.py pins the reader to `encode_single` for every sparsity rule.
"""

from __future__ import annotations

from typing import Callable

import torch

from tooldiff.crosscoder.model import Crosscoder

Reader = Callable[[torch.Tensor], torch.Tensor]


@torch.no_grad()
def latent_reader(cc: Crosscoder, model: int, latents: list[int]) -> Reader:
    """h_ND (raw, float32, on the crosscoder's device) -> f_NS of `latents`, as `encode_single` gives."""
    a, b = cc.cfg.span(model)
    w_enc_SD = cc.W_enc_LD[model].detach()  # this model's latents [a, b) only
    inv_scale = 1.0 / float(cc.norm_scale_M[model])
    mean_D = cc.norm_mean_MD[model].to(w_enc_SD.dtype)
    # pre = b + ((h - mean) / scale) @ W.T = (b - (mean / scale) @ W.T) + (h @ W.T) / scale
    folded_b_S = cc.b_enc_L.detach()[a:b] - inv_scale * (w_enc_SD @ mean_D)
    rows_S = torch.tensor(latents, device=w_enc_SD.device) - a
    if cc.cfg.sparsity == "topk" or (cc.cfg.sparsity == "batchtopk" and float(cc.theta) <= 0):
        bias_only = torch.cat([cc.b_enc_L.detach()[:a], cc.b_enc_L.detach()[b:]])
        return _topk_reader(w_enc_SD, folded_b_S, inv_scale, rows_S, cc.cfg.k, bias_only)
    w_SD, b_S = w_enc_SD[rows_S], folded_b_S[rows_S]

    def pre_of(h_ND: torch.Tensor) -> torch.Tensor:
        return torch.addmm(b_S, h_ND.to(w_SD.dtype), w_SD.T, alpha=inv_scale).float()

    if cc.cfg.sparsity == "batchtopk":
        score_S, theta = cc.batchtopk_score_L()[a:b][rows_S].float(), float(cc.theta)
        return lambda h_ND: _above(torch.relu(pre_of(h_ND)), score_S, theta)
    return lambda h_ND: torch.relu(pre_of(h_ND))


def _above(f_NS: torch.Tensor, score_S: torch.Tensor, theta: float) -> torch.Tensor:
    return f_NS * (f_NS * score_S > theta)


def _topk_reader(w_SD: torch.Tensor, b_S: torch.Tensor, inv_scale: float, rows_S: torch.Tensor, k: int,
                 bias_only: torch.Tensor) -> Reader:
    # Latents this model has no weights for sit at their bias. Only their k largest can be among
    # a row's top k, and only positive ones change which positive latents pass: a k-th value
    # <= 0 passes every positive latent, with or without them.
    positive = bias_only[bias_only > 0].float()
    top_bias = positive.topk(min(k, positive.numel())).values if positive.numel() else None

    def read(h_ND: torch.Tensor) -> torch.Tensor:
        pre_NL = torch.addmm(b_S, h_ND.to(w_SD.dtype), w_SD.T, alpha=inv_scale).float()
        top_NK = pre_NL.topk(min(k, pre_NL.shape[1]), dim=1).values
        if top_bias is not None:
            top_NK = torch.cat([top_NK, top_bias.expand(len(top_NK), -1)], dim=1).topk(k, dim=1).values
        pre_NS = pre_NL.index_select(1, rows_S)
        # Below a row's k-th largest a latent is cut; a negative one is cut by the ReLU anyway.
        return torch.relu(pre_NS) * (pre_NS >= top_NK[:, -1:])

    return read
