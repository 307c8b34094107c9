"""The math of each intervention on the selected hidden states h_ND (SPEC section 3).

Every function is pure: rows of h_ND are independent positions, f_NS are the activations of
the chosen latents S at those positions and d_SD their decoder directions, in the same (raw)
units as h. Nothing here knows about hooks, positions or crosscoder checkpoints. Each op is
one fused kernel where torch has one (addmm, addcmul): they run at every steered token.
"""

from __future__ import annotations

import torch


def unit_direction(v_D: torch.Tensor) -> torch.Tensor:
    """v/||v||, and the zero vector for a zero v (so adding it is the identity)."""
    norm = v_D.norm()
    return v_D / norm if norm > 0 else torch.zeros_like(v_D)


def project(h_ND: torch.Tensor, u_D: torch.Tensor) -> torch.Tensor:
    """Activations f_N1 of a unit direction u read as a latent whose encoder and decoder are both u."""
    return (h_ND @ u_D).unsqueeze(-1)


def reconstruct(h_ND: torch.Tensor, x_hat_ND: torch.Tensor, add_error: bool) -> torch.Tensor:
    """h <- x_hat, or x_hat + (h - x_hat): the splice with the error term equals h up to rounding."""
    if not add_error:
        return x_hat_ND
    error_ND = h_ND - x_hat_ND
    return x_hat_ND + error_ND


def steer(h_ND: torch.Tensor, f_NS: torch.Tensor, d_SD: torch.Tensor, alpha: float) -> torch.Tensor:
    """h + sum_i (alpha - 1) f_i d_i: each chosen latent's contribution scaled by alpha (the paper)."""
    return torch.addmm(h_ND, f_NS, d_SD, alpha=alpha - 1.0)


def ablate(h_ND: torch.Tensor, f_NS: torch.Tensor, d_SD: torch.Tensor) -> torch.Tensor:
    """h - sum_i f_i d_i: remove the chosen latents' contributions (the identity where they do not fire)."""
    return torch.addmm(h_ND, f_NS, d_SD, alpha=-1.0)


def clamp(h_ND: torch.Tensor, f_NS: torch.Tensor, d_SD: torch.Tensor, value: float) -> torch.Tensor:
    """h + sum_i (value - f_i) d_i: as if every chosen latent had fired at exactly `value`."""
    return torch.addmm(h_ND, value - f_NS, d_SD)


def add_relative(h_ND: torch.Tensor, u_D: torch.Tensor, dose: float) -> torch.Tensor:
    """h + dose * u * ||h||: a dose relative to each position's own norm (u a unit vector or 0).

    Any leading shape works (h_BTD too), so a decoding step needs no reshape.
    """
    return torch.addcmul(h_ND, torch.linalg.vector_norm(h_ND, dim=-1, keepdim=True), u_D, value=dose)
