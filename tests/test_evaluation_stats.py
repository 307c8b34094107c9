"""Bootstrap CI and the paired test: coverage, determinism, and the obvious extremes."""

import numpy as np
import pytest

from tooldiff.evaluation import bootstrap_ci, paired_test


def test_bootstrap_ci_covers_a_known_bernoulli_mean():
    p, n, trials = 0.3, 120, 200
    rng = np.random.default_rng(123)
    covered = 0
    for trial in range(trials):
        sample = rng.random(n) < p
        mean, lo, hi = bootstrap_ci(sample, n_boot=400, seed=trial)
        assert lo <= mean <= hi
        covered += lo <= p <= hi
    # nominal 95 %; the percentile bootstrap runs a little under at this n
    assert 0.88 <= covered / trials <= 0.99


def test_bootstrap_ci_is_seeded_and_narrows_with_n():
    values = [1, 0, 1, 1, 0, 1, 0, 1] * 5
    assert bootstrap_ci(values, seed=7) == bootstrap_ci(values, seed=7)
    _, lo_small, hi_small = bootstrap_ci(values[:10], seed=0)
    _, lo_big, hi_big = bootstrap_ci(values * 10, seed=0)
    assert hi_big - lo_big < hi_small - lo_small


def test_bootstrap_ci_constant_values_and_empty_input():
    assert bootstrap_ci([1.0] * 10) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError):
        bootstrap_ci([])


def test_paired_test_identical_conditions_give_p_one():
    a = np.random.default_rng(0).random(50) < 0.5
    result = paired_test(a, a, n_boot=1000, seed=0)
    assert result["diff"] == 0.0 and result["ci95"] == [0.0, 0.0]
    assert result["p_value"] == pytest.approx(1.0)


def test_paired_test_detects_a_real_shift_and_is_antisymmetric():
    rng = np.random.default_rng(1)
    base = rng.random(80) < 0.3
    better = base | (rng.random(80) < 0.4)  # same prompts, some extra successes
    result = paired_test(better, base, n_boot=2000, seed=0)
    assert result["diff"] > 0.2 and result["ci95"][0] > 0 and result["p_value"] < 0.01
    reverse = paired_test(base, better, n_boot=2000, seed=0)
    assert reverse["diff"] == pytest.approx(-result["diff"])
    assert reverse["p_value"] == pytest.approx(result["p_value"])


def test_paired_test_null_p_values_are_not_small():
    rng = np.random.default_rng(2)
    p_values = [paired_test(rng.random(40) < 0.5, rng.random(40) < 0.5, n_boot=300,
                            seed=s)["p_value"] for s in range(60)]
    # under the null the p-value is about uniform: few below 0.05, median near 0.5
    assert np.mean(np.array(p_values) < 0.05) <= 0.15
    assert 0.25 <= np.median(p_values) <= 0.75


def test_paired_test_exact_for_small_n():
    # 4 prompts, all improved by 1: the only patterns as extreme are all + and all - signs
    result = paired_test([1, 1, 1, 1], [0, 0, 0, 0], n_boot=2000)
    assert result["p_value"] == pytest.approx(2 / 16)
    with pytest.raises(ValueError):
        paired_test([1, 0], [1])
