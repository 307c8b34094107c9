"""Latent Scaling (Minder et al. 2025): how much of a latent each model's activations explain.

For latent j with decoder d_j of model A (the fine-tuned one), fit the scalar
beta_j = d_j^T sum_n f_j(x_n) y_n / (|d_j|^2 sum_n f_j(x_n)^2) against two targets per model m:
the reconstruction  y = xhat^m  and the error  y = x^m - (xhat^m - f_j d_j^m).
nu = beta_B / beta_A is low for a truly A-specific latent.
"""

from __future__ import annotations

import torch


def _beta_L(f_NL: torch.Tensor, y_ND: torch.Tensor, dec_LD: torch.Tensor, extra_NL=None) -> torch.Tensor:
    """beta per latent; `extra_NL` adds f_j * (f_j d_j^m . d_j) terms for the error target."""
    num_L = torch.einsum("nl,nd,ld->l", f_NL, y_ND, dec_LD)
    if extra_NL is not None:
        num_L = num_L + extra_NL.sum(0)
    den_L = dec_LD.pow(2).sum(1) * f_NL.pow(2).sum(0)
    return num_L / den_L.clamp_min(1e-12)


def latent_scaling(
    f_NL: torch.Tensor, x_NMD: torch.Tensor, xhat_NMD: torch.Tensor, dec_MLD: torch.Tensor
) -> dict[str, torch.Tensor]:
    """nu_eps and nu_r per latent, all in the crosscoder's normalized space.

    dec_MLD holds each model's decoder rows (zeros where a latent has none). The fit uses A's
    decoder direction d_j^A for both models, as in the method; latents that never fire get NaN.
    """
    f_NL, x_NMD, xhat_NMD, dec_MLD = (t.double() for t in (f_NL, x_NMD, xhat_NMD, dec_MLD))
    d_A_LD = dec_MLD[0]
    betas: dict[str, list[torch.Tensor]] = {"r": [], "eps": []}
    for m in range(x_NMD.shape[1]):
        betas["r"].append(_beta_L(f_NL, xhat_NMD[:, m], d_A_LD))
        residual_ND = x_NMD[:, m] - xhat_NMD[:, m]
        # error target adds back f_j d_j^m; its projection on d_j^A is f_j^2 (d_j^m . d_j^A)
        own_NL = f_NL.pow(2) * (dec_MLD[m] * d_A_LD).sum(1)
        betas["eps"].append(_beta_L(f_NL, residual_ND, d_A_LD, extra_NL=own_NL))
    fires_L = f_NL.abs().sum(0) > 0
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    out = {}
    for key, (beta_A, beta_B) in betas.items():
        ratio_L = beta_B / torch.where(beta_A.abs() > 1e-12, beta_A, nan)
        out[f"nu_{key}"] = torch.where(fires_L, ratio_L, nan).float()
        out[f"beta_{key}_A"], out[f"beta_{key}_B"] = beta_A.float(), beta_B.float()
    return out
