"""Uncertainty and separation: a percentile bootstrap CI of a mean, a paired test of two
conditions measured on the same prompts (bootstrap CI of the mean difference + sign-flip
permutation p-value, exact when all 2^n sign patterns fit in the budget), and the AUROC of
scores against binary labels (the organism's layer scan, the feature ranking, emergence)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

_MAX_DRAWS_PER_CHUNK = 2_000_000  # bounds memory of the (resamples x n) index matrix
_TIE_TOLERANCE = 1e-9


def _as_array(values: Sequence[float], what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise ValueError(f"{what} needs at least one value")
    return array


def _bootstrap_means(x_N: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    n = x_N.size
    chunk = max(1, _MAX_DRAWS_PER_CHUNK // n)
    means = []
    for start in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - start)
        index_RN = rng.integers(0, n, size=(rows, n))
        means.append(x_N[index_RN].mean(axis=1))
    return np.concatenate(means)


def bootstrap_ci(values: Sequence[float], n_boot: int = 2000, seed: int = 0,
                 alpha: float = 0.05) -> tuple[float, float, float]:
    """(mean, lo, hi): the sample mean and its percentile-bootstrap (1 - alpha) interval."""
    if n_boot < 1 or not 0 < alpha < 1:
        raise ValueError("need n_boot >= 1 and 0 < alpha < 1")
    x_N = _as_array(values, "bootstrap_ci")
    means = _bootstrap_means(x_N, n_boot, np.random.default_rng(seed))
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(x_N.mean()), float(lo), float(hi)


def _sign_flip_means(d_N: np.ndarray, n_perm: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """Means of d under sign flips: every pattern if 2^n <= n_perm (exact=True), else n_perm
    random ones."""
    n = d_N.size
    if n <= 20 and 2 ** n <= n_perm:
        signs_PN = np.array(list(itertools.product((-1.0, 1.0), repeat=n)))
        return signs_PN @ d_N / n, True
    means = []
    chunk = max(1, _MAX_DRAWS_PER_CHUNK // n)
    for start in range(0, n_perm, chunk):
        rows = min(chunk, n_perm - start)
        signs_RN = rng.choice((-1.0, 1.0), size=(rows, n))
        means.append(signs_RN @ d_N / n)
    return np.concatenate(means), False


def paired_test(a: Sequence[float], b: Sequence[float], n_boot: int = 2000,
                seed: int = 0) -> dict:
    """Compare two conditions on the same prompts (a[i] and b[i] belong to prompt i).

    Returns `{"diff": mean(a - b), "ci95": [lo, hi], "p_value", "n", "seed"}`: the CI is a
    paired bootstrap of the mean difference; the two-sided p-value is a paired sign-flip
    permutation test, (1 + #{|perm mean| >= |diff|}) / (1 + #perms) for random flips and the
    exact share when every sign pattern is enumerated.
    """
    a_N, b_N = _as_array(a, "paired_test"), _as_array(b, "paired_test")
    if a_N.shape != b_N.shape:
        raise ValueError(f"paired_test needs equal lengths, got {a_N.size} and {b_N.size}")
    d_N = a_N - b_N
    diff, lo, hi = bootstrap_ci(d_N, n_boot=n_boot, seed=seed)
    perm_means, exact = _sign_flip_means(d_N, n_boot, np.random.default_rng(seed + 1))
    # Ties count as extreme; the tolerance absorbs the rounding of two ways to sum the same d.
    threshold = abs(diff) * (1 - _TIE_TOLERANCE) - _TIE_TOLERANCE
    extreme = int(np.sum(np.abs(perm_means) >= threshold))
    p_value = extreme / perm_means.size if exact else (1 + extreme) / (1 + perm_means.size)
    return {"diff": diff, "ci95": [lo, hi], "p_value": min(1.0, float(p_value)),
            "n": int(d_N.size), "seed": seed}


def auroc(scores_NL, positive_N) -> np.ndarray:
    """AUROC of each column of `scores_NL` (rows: examples) = P(score_pos > score_neg) + 0.5
    P(tie), exact with ties: sparse latents are mostly 0, so ties are the rule, and a rank
    formula that ignores them would be badly biased. Accepts anything numpy reads (a torch CPU
    tensor included); returns float64 per column."""
    scores_NL = np.asarray(scores_NL, dtype=np.float64)
    positive_N = np.asarray(positive_N, dtype=bool)
    pos_PL, neg_QL = scores_NL[positive_N], np.sort(scores_NL[~positive_N], axis=0)
    if len(pos_PL) == 0 or len(neg_QL) == 0:
        raise ValueError("AUROC needs rows of both classes")
    wins_L = np.empty(scores_NL.shape[1])
    for j in range(scores_NL.shape[1]):
        below = np.searchsorted(neg_QL[:, j], pos_PL[:, j], side="left")
        below_or_tie = np.searchsorted(neg_QL[:, j], pos_PL[:, j], side="right")
        wins_L[j] = (below + 0.5 * (below_or_tie - below)).sum()
    return wins_L / (len(pos_PL) * len(neg_QL))
