"""The null-twin check (experiment/nulls.py): drift measures and the fair-null criteria."""

from __future__ import annotations

import json

import pytest

from tooldiff.experiment.nulls import TOOL_SHIFT_CAP, call_shifts, kl_drift, null_check, weight_drift
from tooldiff.organism import load_organism


def test_a_model_has_no_drift_from_itself_and_a_nudged_one_has_some(tiny_organism):
    org = load_organism(tiny_organism)
    texts = [r["messages"][0]["content"] for r in org.records("rl")[:8]]
    assert weight_drift(org.base, org.base) == (0.0, 0.0)
    kl_all, kl_last = kl_drift(org.base, org.base, org.tokenizer, texts)
    assert abs(kl_all) < 1e-6 and abs(kl_last) < 1e-6
    norm, rel = weight_drift(org.base, org.rl)
    assert norm > 0 and 0 < rel < 1
    kl_all, kl_last = kl_drift(org.base, org.rl, org.tokenizer, texts)
    assert kl_all > 0 and kl_last > 0


def test_call_shifts_are_twin_minus_base_per_kind(tiny_organism):
    info = load_organism(tiny_organism, models=False).info
    shifts = {s.kind: s for s in call_shifts(tiny_organism, seed=0)}
    for kind, s in shifts.items():
        by_kind = info["metrics"]
        assert s.base == pytest.approx(by_kind["base"]["by_kind"][kind]["call_rate"]["mean"])
        assert s.twin == pytest.approx(by_kind["rl"]["by_kind"][kind]["call_rate"]["mean"])
        assert s.diff == pytest.approx(s.twin - s.base) and s.ci95[0] <= s.diff <= s.ci95[1]


def test_a_twin_checked_against_itself_moves_like_rl_and_its_calls_decide(tiny_organism, tmp_path):
    """Ratios of 1 pass the movement criterion; whether the tool-use one holds is the twin's own
    call shift, so the verdict follows it (the tiny twin calls far more than its base)."""
    from typer.testing import CliRunner

    from tooldiff.cli import app

    report = null_check(tiny_organism, tiny_organism, n_prompts=8, seed=0)
    assert report["sham_over_real"] == {"kl_all": 1.0, "kl_decision": 1.0, "weight_norm": 1.0}
    assert all(report["criteria"]["moves_like_rl"].values())
    untouched = {s["kind"]: abs(s["diff"]) <= TOOL_SHIFT_CAP for s in report["sham"]["shifts"]}
    assert report["criteria"]["tool_use_untouched"] == untouched
    assert report["fair_null"] == all(untouched.values())
    result = CliRunner().invoke(app, ["null-check", "--real", str(tiny_organism), "--sham", str(tiny_organism),
                                      "--out", str(tmp_path / "null.json"), "--n-prompts", "8"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "null.json").read_text())["sham_over_real"]["weight_norm"] == 1.0
    assert "fair null" in result.output


def test_the_sham_reward_leaves_tool_calls_untouched_on_the_tiny_organism(tiny_organism, tiny_sham):
    """Same base, same RL settings and prompts: the real reward teaches the tiny twin to call, the
    sham reward (organism/reward.py) leaves every kind's call rate where the base has it, while
    it still moves the model (the check has power: the real twin's call shift is large)."""
    assert load_organism(tiny_sham, models=False).info["variant"] == "sham"
    report = null_check(tiny_organism, tiny_sham, n_prompts=16, seed=0)
    assert all(report["criteria"]["tool_use_untouched"].values()), report["sham"]["shifts"]
    assert max(abs(s["diff"]) for s in report["real"]["shifts"]) > 0.5, report["real"]["shifts"]
    assert report["sham"]["drift"]["weight_norm"] > 0 and report["sham"]["drift"]["kl_all"] > 0
