"""Effects, control-panel verdicts, the sweep summary and the positive control's checks, on synthetic results."""

import pytest
import torch

from tooldiff.errors import UserError
from tooldiff.experiment import load_experiment_config
from tooldiff.experiment.analysis import add_effects, sweep_summary


def test_large_effect_with_quiet_controls_beats_the_panel(synthetic):
    v = synthetic.analysed(effect_k=35, control_ks=[10, 11, 9, 10, 12])["eff"]["verdict"]["strict"]
    assert v["excludes_zero"] and v["beats_controls"] and v["n_controls"] == 5


def test_effect_matched_by_a_random_direction_does_not_beat_the_panel(synthetic):
    v = synthetic.analysed(effect_k=35, control_ks=[10, 36, 9, 10, 12])["eff"]["verdict"]["strict"]
    assert v["excludes_zero"] and not v["beats_controls"]


def test_null_effect_excludes_nothing(synthetic):
    v = synthetic.analysed(effect_k=10, control_ks=[10, 10, 10, 10, 10])["eff"]["verdict"]["strict"]
    assert not v["excludes_zero"] and not v["beats_controls"]


def test_per_kind_rates_split_the_no_call_prompts(synthetic):
    res = synthetic.analysed(effect_k=35, control_ks=[10])
    per_kind = res["eff"]["per_kind"]
    assert per_kind["call"]["n"] == 20 and per_kind["call"]["strict"] == 1.0
    assert per_kind["not_offered"]["strict"] == 1.0 and per_kind["chitchat"]["strict"] == 0.5


def test_sweep_summary_is_mean_and_std_over_crosscoders(synthetic):
    res = {"none": synthetic.entry("none", "rl", "none", synthetic.ones(10), role="reference", features=())}
    for i, k in enumerate([20, 30]):
        res[f"e{i}"] = synthetic.entry(f"e{i}", "rl", "reconstruct", synthetic.ones(k), features=(), crosscoder=f"cc{i}")
    add_effects(res, synthetic.KINDS, seed=0, n_boot=200)
    (row,) = sweep_summary(res)
    assert row["n_crosscoders"] == 2
    assert abs(row["mean_diff"] - 0.375) < 1e-9 and abs(row["std_diff"] - 0.1767767) < 1e-6


def test_nan_alpha_in_experiment_config_is_a_user_error():
    with pytest.raises(UserError, match="alphas"):
        load_experiment_config({"alphas": [1, float("nan")]})
    with pytest.raises(UserError, match="unknown_key"):
        load_experiment_config({"unknown_key": 1})


def _rank1_experiment(conditions: list[dict], found: dict):
    """An experiment summary around the conditions of a rank1 run and its planted checks."""
    from tooldiff.experiment.summary import summary_of

    return summary_of({"layer": 1, "n_test": 10, "config": {"seed": 0}, "conditions": conditions, "sweep": [],
                       "rankings": {}, "crosscoders": {}, "positive_control": found})


def _positive_control_run(cosine: float, ablation_diff: float, beats: bool, direction_diff: float = 0.0,
                          name: str = "dfc"):
    """A minimal rank1 experiment: RL calls on 8 of 10 prompts; the top latent ablated, and its
    direction projected out."""
    stat = {"mean": 0.5, "ci95": [0.4, 0.6]}
    metrics = {"n": 10, "strict": stat, "lenient": stat, "trigger": {}, "calls_per_prompt": 0.8}
    none = {"key": "rl/none", "intervention": "none", "model": "rl", "role": "reference",
            "made_call": [1] * 8 + [0] * 2, "metrics": metrics}

    def effect(intervention: str, diff: float) -> dict:
        return {"key": f"rl/{intervention}/{name}", "intervention": intervention, "role": "effect", "model": "rl",
                "crosscoder": name, "features": [3], "metrics": metrics,
                "effect": {"call_rate": {"diff": diff, "ci95": [diff - 0.1, diff + 0.1]}},
                "verdict": {"call_rate": {"excludes_zero": True, "beats_controls": beats, "n_controls": 1}}}

    found = {"best_latent": 3, "best_abs_cosine": cosine, "best_group": "a_excl",
             "top_ranked_latent": 3, "top_ranked_abs_cosine": cosine}
    return _rank1_experiment([none, effect("ablate", ablation_diff), effect("ablate_direction", direction_diff)],
                             {name: found})


def _joined(first, second):
    """Two rank1 runs as one: the first's `none`, both runs' ablations and planted checks."""
    return _rank1_experiment([c.to_dict() for c in first.conditions + second.conditions[1:]],
                             {n: p.to_dict() for n, p in (first.positive_control | second.positive_control).items()})


def test_the_positive_control_passes_only_on_all_three_criteria():
    from tooldiff.experiment.positive import positive_summary

    assert positive_summary(_positive_control_run(0.95, -0.6, True)).passed
    assert not positive_summary(_positive_control_run(0.85, -0.6, True)).passed  # direction not recovered
    assert not positive_summary(_positive_control_run(0.95, -0.3, True)).passed  # removes 0.3 of 0.8: not most
    assert not positive_summary(_positive_control_run(0.95, -0.6, False)).passed  # within its control panel
    summary = positive_summary(_positive_control_run(0.95, -0.3, True, direction_diff=-0.7))
    assert not summary.passed and summary.passed_by_direction  # the two readings of "ablation", apart
    verdict = summary.verdicts["dfc"]
    assert verdict["latent_ablation"] == {"removes_most_calls": False, "beats_controls": True, "call_rate_diff": -0.3}
    assert verdict["direction_ablation"]["removes_most_calls"] and not verdict["passed_by_latent_ablation"]


def test_the_positive_control_validates_only_the_kinds_that_passed():
    from tooldiff.experiment.positive import positive_summary
    from tooldiff.experiment.positive import crosscoder_kind

    untied = _positive_control_run(0.97, -0.01, False, direction_diff=-0.6, name="dfc-k8-s0")
    tied = _positive_control_run(0.99, -0.7, True, name="dfc-tied-k8-s0")
    summary = positive_summary(_joined(untied, tied))
    assert summary.passed and summary.passed_by == ["dfc-tied-k8-s0"]
    assert summary.validated_kinds == ["dfc-tied-k8"] == [crosscoder_kind("dfc-tied-k8-s12")]
    assert not summary.verdicts["dfc-k8-s0"]["passed_by_latent_ablation"]
    # One seed of a kind failing is enough to leave the kind unvalidated.
    tied_s1 = _positive_control_run(0.99, -0.2, True, name="dfc-tied-k8-s1")
    summary = positive_summary(_joined(tied, tied_s1))
    assert not summary.passed and summary.passed_by == ["dfc-tied-k8-s0"] and summary.validated_kinds == []


def test_planted_check_measures_the_share_of_the_planted_shift_a_latent_carries():
    """RL = base + g·u at the decision token; latent 0 (A-exclusive) reads and writes 0.6·u, so an
    ablation removes 0.6 of the shift and the check must say so."""
    from tooldiff.crosscoder import Crosscoder, CrosscoderConfig
    from tooldiff.experiment.run import planted_check
    from tooldiff.features import CalibrationActs

    d = 8
    cc = Crosscoder.initialized(CrosscoderConfig(d_model=d, dict_size=20, excl_a=0.1, excl_b=0.1, k=1))
    u_D = torch.zeros(d)
    u_D[2] = 1.0
    with torch.no_grad():
        for W in (*cc.W_enc_LD, *cc.W_dec_LD):
            W.zero_()
        cc.W_enc_LD[0][0] = u_D  # latent 0 fires with f = x·u on RL's activations
        cc.W_dec_LD[0][0] = 0.6 * u_D
    g_N = torch.linspace(1.0, 3.0, 10)
    x_base_ND = torch.randn(10, d) * torch.tensor([1, 1, 0, 1, 1, 1, 1, 1.0])  # nothing along u in the base
    acts = CalibrationActs(x_NMD=torch.stack([x_base_ND + g_N[:, None] * u_D, x_base_ND], 1),
                           kinds=["call"] * 10, ids=[str(i) for i in range(10)])
    found = planted_check(cc, 5 * u_D, [0], acts)
    assert found["top_ranked_abs_cosine"] == pytest.approx(1.0)
    assert found["planted_shift"] == pytest.approx(2.0)
    assert found["captured_share"] == pytest.approx(0.6)
    assert found["captured_n"] == 10


@pytest.mark.parametrize("override, message", [
    ({"alphas": []}, "alphas: List should have at least 1 item"),
    ({"doses": [float("nan")]}, r"doses\[0\]: Input should be a finite number"),
    ({"contrast": "loose"}, "contrast: Input should be 'paper' or 'strict'"),
    ({"positions": "first"}, "positions: Input should be"),
    ({"top_k": 3}, "unknown key 'top_k'"),
])
def test_a_bad_experiment_config_is_one_line(override, message):
    with pytest.raises(UserError, match=message):
        load_experiment_config(override)
