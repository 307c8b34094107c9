"""Feature statistics against brute-force references, ties included."""

import itertools

import torch

from tooldiff.features.latent_scaling import latent_scaling
from tooldiff.features.rank import relative_norm_delta
from tooldiff.features.stats import auroc, cohens_d, firing_rate


def brute_auroc(values, positive):
    pos = [v for v, p in zip(values, positive) if p]
    neg = [v for v, p in zip(values, positive) if not p]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auroc_matches_brute_force_with_many_ties():
    g = torch.Generator().manual_seed(0)
    f_NL = torch.relu(torch.randn(60, 7, generator=g)).round(decimals=1)  # ~half zeros, ties
    positive_N = torch.rand(60, generator=g) < 0.4
    got = auroc(f_NL, positive_N)
    for j in range(7):
        assert abs(float(got[j]) - brute_auroc(f_NL[:, j].tolist(), positive_N.tolist())) < 1e-6


def test_auroc_extremes():
    positive_N = torch.tensor([True, True, False, False])
    f_NL = torch.tensor([[2.0, 0.0, 1.0], [3.0, 0.0, 1.0], [0.0, 5.0, 1.0], [1.0, 4.0, 1.0]])
    assert auroc(f_NL, positive_N).tolist() == [1.0, 0.0, 0.5]


def test_cohens_d_matches_formula_and_is_zero_for_constant():
    pos = torch.tensor([1.0, 2.0, 3.0])
    neg = torch.tensor([0.0, 0.0, 1.0, 1.0])
    f_NL = torch.stack([torch.cat([pos, neg]), torch.ones(7)], dim=1)
    positive_N = torch.tensor([True] * 3 + [False] * 4)
    pooled = ((2 * pos.var() + 3 * neg.var()) / 5).sqrt()
    expected = (pos.mean() - neg.mean()) / pooled
    d = cohens_d(f_NL, positive_N)
    assert abs(float(d[0]) - float(expected)) < 1e-5
    assert float(d[1]) == 0.0


def test_firing_rate_counts_active_rows():
    f_NL = torch.tensor([[0.0, 1.0], [2.0, 0.0], [0.0, 0.0]])
    assert firing_rate(f_NL, torch.tensor([True, True, False])).tolist() == [0.5, 0.5]


def test_delta_is_0_for_rl_only_and_1_for_base_only():
    dec_MLD = torch.zeros(2, 3, 4)
    dec_MLD[0, 0] = 1.0  # RL only
    dec_MLD[1, 1] = 1.0  # base only
    dec_MLD[:, 2] = 1.0  # equal
    delta_L, share_L = relative_norm_delta(dec_MLD)
    assert delta_L.tolist() == [0.0, 1.0, 0.5]
    assert share_L.tolist() == [1.0, 0.0, 0.5]


def test_latent_scaling_recovers_planted_ratio():
    """A latent whose direction appears in B's activations at half strength has nu close to 0.5."""
    g = torch.Generator().manual_seed(1)
    n, d = 400, 8
    dir_D = torch.randn(d, generator=g)
    f_NL = torch.relu(torch.randn(n, 1, generator=g))
    noise = lambda: 0.01 * torch.randn(n, d, generator=g)  # noqa: E731
    x_NMD = torch.stack([f_NL * dir_D + noise(), 0.5 * f_NL * dir_D + noise()], dim=1)
    dec_MLD = torch.stack([dir_D[None], 0.5 * dir_D[None]])
    xhat_NMD = torch.stack([f_NL * dir_D, 0.5 * f_NL * dir_D], dim=1)
    out = latent_scaling(f_NL, x_NMD, xhat_NMD, dec_MLD)
    assert abs(float(out["nu_r"][0]) - 0.5) < 1e-4
    assert abs(float(out["nu_eps"][0]) - 0.5) < 0.02
