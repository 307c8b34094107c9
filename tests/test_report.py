"""tooldiff.report: results.json as SPEC §7 describes it, the findings computed from the numbers
(whichever way they fall), report.md and its plots, on synthetic analysed results."""

import json

import pytest

from tooldiff.experiment.positive import PositiveSummary
from tooldiff.report import write_report
from tooldiff.report.markdown import render_report
from tooldiff.report.results import Results, build_results, crosscoder_kind, read_results

M_KEYS = {"n", "strict", "lenient", "trigger", "calls_per_prompt"}
CONDITION_KEYS = {"model", "intervention", "crosscoder", "features", "alpha", "positions", "metrics"}


def test_results_json_follows_the_output_contract(synthetic, tmp_path):
    experiment = synthetic.experiment(synthetic.analysed(35, [10, 11]))
    results = write_report(experiment, tmp_path)
    written = json.loads((tmp_path / "results.json").read_text())
    assert written == json.loads(json.dumps(results.to_dict())) and written["format"] == Results.FORMAT
    assert read_results(tmp_path / "results.json") == results
    assert set(written) >= {"models", "conditions", "features", "crosscoders"}
    assert results.models["base"] is None and set(written["models"]["rl"]) == M_KEYS
    assert results.models["rl"].n == synthetic.N
    for condition in written["conditions"]:
        assert CONDITION_KEYS <= condition.keys() and set(condition["metrics"]) == M_KEYS
        assert {"mean", "ci95"} <= condition["metrics"]["strict"].keys()
        assert set(condition["metrics"]["trigger"]) == {"precision", "recall", "f1", "fpr"}
    assert results.features["cc0"]["top"][0]["latent"] == 7 and results.crosscoders == {"cc0": {}}
    assert (tmp_path / "report.md").read_text().startswith("#")
    assert (tmp_path / "dose_response.png").stat().st_size > 1000 and (tmp_path / "delta_hist.png").is_file()


@pytest.mark.parametrize("effect_k,controls,holds", [(35, [10, 11], True), (10, [10, 10], False)])
def test_single_latent_finding_is_computed_either_way(synthetic, effect_k, controls, holds):
    results = build_results(synthetic.experiment(synthetic.analysed(effect_k, controls)))
    assert results.findings.single_latent.holds is holds
    text = render_report(results, {})
    assert ("**Held:**" in text) is holds and ("**Did not hold:**" in text) is (not holds)
    if holds:  # where the effect comes from: calls per kind without and with the intervention
        (winner,) = results.findings.single_latent.winners
        assert winner.call_rate_by_kind["call"] == [10 / 20, 20 / 20]
        assert "call 50 → 100 %" in text


def test_the_single_latent_claim_is_restated_on_the_validated_instruments_only(synthetic):
    experiment = synthetic.experiment(synthetic.analysed(35, [10, 11]))
    validated = build_results(experiment, positive=PositiveSummary(validated_kinds=["cc0"]))
    claim = validated.findings.single_latent_validated
    assert claim.crosscoders == ["cc0"] and len(claim.winners) == 1
    assert "1 of 1 single-latent conditions held; 1 raised strict" in render_report(validated, {})
    other = build_results(experiment, positive=PositiveSummary(validated_kinds=["dfc-tied"]))
    assert other.findings.single_latent_validated.n_tried == 0
    unvalidated = build_results(experiment, positive=PositiveSummary(validated_kinds=[]))
    assert unvalidated.findings.single_latent_validated is None
    assert "No crosscoder kind passed the positive control" in render_report(unvalidated, {})


def test_a_crosscoder_kind_is_its_name_without_the_seed():
    assert crosscoder_kind("dfc-tied-excl10-topk-k8-s2") == "dfc-tied-excl10-topk-k8"
    assert crosscoder_kind("cc-topk-k8") == "cc-topk-k8"
