"""Null pairs: the same pipeline on the real pair and on base vs base, side by side."""

import json
from dataclasses import replace

import pytest

from tooldiff.errors import UserError
from tooldiff.nullpairs import BASE_VS_BASE, JSON_FILE, REAL, SHAM, TABLE_FILE, null_pairs, run_null_pairs


@pytest.fixture(scope="module")
def tiny_pair(tiny_study):
    return tiny_study.pair


def test_base_vs_base_puts_the_base_in_both_slots_and_a_sham_must_share_the_base(tiny_pair):
    pairs = null_pairs(tiny_pair)
    assert list(pairs) == [REAL, BASE_VS_BASE]
    assert pairs[BASE_VS_BASE].rl == pairs[BASE_VS_BASE].base == tiny_pair.base
    assert pairs[BASE_VS_BASE].splits == tiny_pair.splits
    assert null_pairs(tiny_pair, tiny_pair)[SHAM] is tiny_pair  # a twin of the same base is accepted
    foreign = replace(tiny_pair, base=tiny_pair.rl)
    with pytest.raises(UserError, match="is not the real pair's base"):
        null_pairs(tiny_pair, foreign)


def test_the_pipeline_runs_on_each_pair_and_the_null_has_no_model_difference(tiny_study, tmp_path):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(tiny_study.SWEEP)
    outcomes = run_null_pairs(null_pairs(tiny_study.pair), sweep, tiny_study.config, tmp_path / "nulls", 0.7)
    real, null = outcomes
    assert (real.name, null.name) == (REAL, BASE_VS_BASE)
    # the same model in both slots decodes the same outputs: its "RL" strict is the base's
    assert null.strict["rl"] == null.strict["base"] == real.strict["base"]
    assert null.n_latents == real.n_latents and set(null.sweep) == set(real.sweep)
    for o in outcomes:  # each pair is a whole pipeline run of its own
        assert (tmp_path / "nulls" / o.name / "results.json").is_file()
        assert all(len(ls) <= o.n_latents[cc] for cc, ls in o.passing.items())
    saved = json.loads((tmp_path / "nulls" / JSON_FILE).read_text())
    assert [p["name"] for p in saved["pairs"]] == [REAL, BASE_VS_BASE] and "strict AUROC" in saved["selection"]
    table = (tmp_path / "nulls" / TABLE_FILE).read_text()
    assert f"| {BASE_VS_BASE} |" in table and "| condition | real | base-vs-base |" in table
