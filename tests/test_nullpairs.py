"""Null pairs: the same pipeline on the real pair and on base vs base, side by side; the matrix
that runs them at every organism seed and judges the claims with the null beside them."""

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from tooldiff.errors import UserError
from tooldiff.matrix import MATRIX_FILE, SHAM_DIR, MatrixConfig, publish, run_matrix, seed_dir
from tooldiff.report.readme import matrix_block
from tooldiff.nullpairs import BASE_VS_BASE, JSON_FILE, REAL, SHAM, TABLE_FILE, null_pairs

REPO = Path(__file__).resolve().parents[1]


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


def test_the_matrix_runs_each_pair_judges_the_claims_and_resumes(tiny_study, tiny_sham, tmp_path):
    """`tooldiff matrix` at one organism seed (the session's tiny organism and its sham twin,
    copied where the matrix keeps seed 0's), its jobs two at a time in worker processes: the
    pipeline on the real pair, on base vs base and on the sham twin, the sham's fairness check, the
    null pairs' table, the claims judged with the nulls beside them, the seed's RL course
    (emergence, headroom with the final twin's transfer: the tiny organism keeps its checkpoints);
    run again, it only re-judges."""
    out = tmp_path / "matrix"
    shutil.copytree(tiny_study.organism, seed_dir(out, 0) / "organism")
    shutil.copytree(tiny_sham, seed_dir(out, 0) / SHAM_DIR)
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(tiny_study.SWEEP)
    config = MatrixConfig(seeds=(0,), preset="tiny", n_per_kind=tiny_study.GRID["n_per_kind"], sweep=str(sweep),
                          positive_control=False, experiment=tiny_study.GRID, workers=2)
    claims = run_matrix(config, out)
    pairs = seed_dir(out, 0) / "pairs"
    saved = json.loads((pairs / JSON_FILE).read_text())
    real, null, sham = saved["pairs"]
    assert (real["name"], null["name"], sham["name"]) == (REAL, BASE_VS_BASE, SHAM)
    assert "strict AUROC" in saved["selection"] and saved["sham_check"]["sham"]["variant"] == "sham"
    assert "Is the sham twin a fair null?" in (pairs / TABLE_FILE).read_text()
    assert (seed_dir(out, 0) / "logs" / "pipeline-sham.txt").is_file()  # a job's output goes to its log
    # the same model in both slots decodes the same outputs: its "RL" strict is the base's
    assert null["strict"]["rl"] == null["strict"]["base"] == real["strict"]["base"]
    # a null pair runs the top latent's grid: the real pair's cells without the top-|S| ones
    assert saved["null_grid"] == "top_latent" and null["n_latents"] == real["n_latents"]
    assert set(null["sweep"]) == {cell for cell in real["sweep"] if "top2" not in cell} < set(real["sweep"])
    table = (pairs / TABLE_FILE).read_text()
    assert f"| {BASE_VS_BASE} |" in table and "| condition | real | base-vs-base | sham |" in table
    text = claims.read_text()
    # the small grid has no α 32 and no dose 1: three claims measured, each with its null beside it
    assert "organism seeds 0" in text and text.count("| seed 0:") == 3 and text.count("| +0.0 [") >= 3, text
    assert "| in the headroom twin" in text and "| the final twin's top RL latent added into the headroom" in text
    (run,) = json.loads((out / MATRIX_FILE).read_text())["runs"]
    assert [r["seed"] for r in run["seeds"]] == [0] and [Path(n).parent.name for n in run["seeds"][0]["nulls"]] == [BASE_VS_BASE, SHAM]
    assert {"seed 0: emergence", "seed 0: headroom"} <= set(run["seeds"][0]["seconds"])
    course = seed_dir(out, 0)
    assert json.loads((course / "emergence" / "emergence.json").read_text())["retrained"]
    _check_headroom(course / "headroom", pairs / REAL / "experiment")
    results = json.loads((pairs / REAL / "results.json").read_text())  # the run's facts, as the demo's
    assert results["organism_source"] == "built from the recipe" and results["finished_at"] and results["machine"]

    published = publish(out, tmp_path / "published")  # what docs/results/matrix/ holds, and the README reads
    assert {p.name for p in (published / "seed-0").iterdir()} >= {
        "results.json", "report.md", "null_pairs.md", "base-vs-base.results.json", "sham.results.json",
        "sham-check.json", "emergence.md", "headroom.md", "organism.md"}
    block = "\n".join(matrix_block(published))
    assert "latents passing the tool-feature selection: real " in block and "; sham twin: calls per kind " in block
    assert "| organism" not in block and "# Organism seed 0 (tiny, full" in (published / "seed-0" / "organism.md").read_text()

    made = [pairs / REAL / "experiment" / "results.jsonl", course / "headroom" / "transfer" / "results.jsonl",
            course / "emergence" / "emergence.json"]  # generated rows are appended as they are made
    before = [(p.stat().st_mtime_ns, p.read_bytes()) for p in made]
    run_matrix(config, out)
    assert [(p.stat().st_mtime_ns, p.read_bytes()) for p in made] == before, "a finished matrix generated again"
    record = json.loads((out / MATRIX_FILE).read_text())  # the timings add up over the invocations
    assert len(record["runs"]) == 2 and record["wall_s"] == round(sum(r["wall_s"] for r in record["runs"]), 1)
    first, again = (r["seeds"][0]["seconds"]["seed 0: headroom"] for r in record["runs"])
    assert record["stage_s"]["0"]["seed 0: headroom"] == round(first + again, 1) and again < first
    bench = subprocess.run([sys.executable, str(REPO / "benchmarks" / "matrix_time.py"), "--out", str(out),
                            "--report-only", "--target", "1e6"], capture_output=True, text=True, timeout=60)
    assert bench.returncode == 0, bench.stderr
    assert "organism seed 0:" in bench.stdout and "over 2 invocation(s): within" in bench.stdout


def _check_headroom(out, final_experiment):
    """The checkpoint steered at both positions (the small grid's α 16), and the final twin's top
    latents (its crosscoders, its selection) added into it: the transfer's unsteered "base" slot is
    the checkpoint itself, on the same test prompts."""
    from tooldiff.experiment.summary import read_summary
    from tooldiff.headroom import MODEL_DIR, POSITIONS, TABLE_FILE, TRANSFER_DIR

    text = (out / TABLE_FILE).read_text()
    for positions in POSITIONS:
        assert f"## Steering at positions: {positions}" in text
    assert text.count("| 16 |") >= 2 and text.count("on its call prompts") == len(POSITIONS) + 1  # tool prompts
    transfer, steered = read_summary(out / TRANSFER_DIR), read_summary(out / POSITIONS[0] / "experiment")
    assert transfer.target == str(out / MODEL_DIR) and {c.intervention for c in transfer.conditions} == {"none", "add"}
    # the steer grid alone: the top latent's steers, their controls and rivals (added directions)
    assert {(c.intervention, len(c.features)) for c in steered.conditions if c.role == "effect"} == {("steer", 1)}
    assert {c.intervention for c in steered.conditions} == {"none", "steer", "add"}
    assert transfer.reference("base").metrics.strict.mean == steered.reference("rl").metrics.strict.mean
    assert transfer.rankings.keys() == read_summary(final_experiment).rankings.keys()
    assert "(transfer)" in text and text.count("| 0.5 |") == len(transfer.rankings)  # a row per crosscoder, dose 0.5


def test_a_matrix_config_refuses_repeated_or_negative_seeds_and_no_workers():
    for seeds in ((), (1, 1), (-1,)):
        with pytest.raises(UserError, match="distinct organism seeds"):
            MatrixConfig(seeds=seeds)
    with pytest.raises(UserError, match="--workers must be at least 1"):
        MatrixConfig(workers=0)
