"""Emergence along RL (experiment/emergence.py): a row per saved checkpoint, read with the final
twin's crosscoder, whose kept step must agree with the twin itself."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from tooldiff.errors import UserError
from tooldiff.experiment.emergence import (
    FORMAT, JSON_FILE, PLOT_FILE, SAMPLE_FILE, TABLE_FILE, EmergenceConfig, calibration_sample, run_emergence,
    saved_steps,
)
from tooldiff.organism import load_organism


@pytest.fixture(scope="module")
def emergence(tiny_study, tmp_path_factory):
    """`tooldiff emergence` on the tiny study, every calibration prompt: (json, out dir)."""
    from typer.testing import CliRunner

    from tooldiff.cli import app

    out = tmp_path_factory.mktemp("emergence")
    result = CliRunner().invoke(app, ["emergence", "--organism", str(tiny_study.organism), "--experiment",
                                      str(tiny_study.experiment), "--out", str(out), "--calls", "1000",
                                      "--not-offered", "1000", "--chitchat", "1000"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == ""  # progress bars go to stderr, nothing else is printed
    return json.loads((out / JSON_FILE).read_text()), out


def test_the_study_reads_the_organism_whose_checkpoints_it_follows(tiny_study, tiny_organism):
    assert tiny_study.organism == tiny_organism


def test_rows_cover_the_base_and_every_saved_checkpoint(emergence, tiny_organism):
    data, out = emergence
    info = load_organism(tiny_organism, models=False).info["rl_training"]["checkpoints"]
    steps = saved_steps(tiny_organism)
    assert steps == [s["step"] for s in info["scores"]]
    assert data["format"] == FORMAT and [r["step"] for r in data["rows"]] == [0, *steps]
    assert [r["step"] for r in data["rows"] if r["kept"]] == [info["chosen_step"]] == [data["kept_step"]]
    for row, score in zip(data["rows"][1:], info["scores"]):
        assert row["selection"]["strict"] == score["call_strict"]
        assert row["selection"]["wrong_calls"] == score["wrong_calls"]
    base = data["rows"][0]
    assert base["selection"] is None and base["shift"]["norm"] == 0 and base["shift"]["share"] is None
    table = (out / TABLE_FILE).read_text().splitlines()
    assert sum(line.startswith("| ") for line in table) == len(data["rows"]) + 1  # header + a line per step
    assert (out / PLOT_FILE).stat().st_size > 0


def test_the_kept_step_reads_as_the_final_twin_itself(emergence, tiny_study, tiny_organism):
    """The kept checkpoint against the twin in rl/: the experiment's own ranking (AUROC), RL-minus-base
    shift (its calibration harvest of rl/ and base) and the twin's greedy rates on the same prompts."""
    from tooldiff.experiment.data import calibration_acts
    from tooldiff.features import model_shift
    from tooldiff.features.rank import TOOL_KINDS
    from tooldiff.organism.measure import evaluate
    from tooldiff.organism.store import read_jsonl

    data, out = emergence
    kept = next(r for r in data["rows"] if r["kept"])
    ranking = json.loads((tiny_study.experiment / "features" / f"{data['crosscoder']}.json").read_text())
    stats = next(r for r in ranking["latents"] if r["latent"] == data["latent"])
    assert kept["latent"]["auroc"] == pytest.approx(stats["strict_auroc"], abs=1e-4)
    assert kept["latent"]["firing_by_kind"]["call"] == pytest.approx(stats["firing"]["call"], abs=1e-4)

    from tooldiff.crosscoder import Crosscoder

    cc = Crosscoder.load(tiny_study.crosscoders / data["crosscoder"])
    acts = calibration_acts(tiny_study.experiment / "calibration_acts", tiny_study.experiment / "calibration.jsonl")
    shift_D = model_shift(acts.x_NMD, torch.tensor([k in TOOL_KINDS for k in acts.kinds]))
    d_D = cc.decoder_vector(data["latent"], 0, raw=True)
    assert kept["shift"]["norm"] == pytest.approx(float(shift_D.norm()), rel=1e-4)
    assert kept["shift"]["cos"] == pytest.approx(float(torch.cosine_similarity(shift_D, d_D, dim=0)), abs=1e-4)

    org = load_organism(tiny_organism)
    metrics, _ = evaluate(org.rl, org.tokenizer, read_jsonl(out / SAMPLE_FILE), 0, 64, "the twin")
    assert kept["calibration"]["strict"] == metrics["by_kind"]["call"]["strict"]["mean"]
    assert kept["calibration"]["wrong_calls"] == metrics["fpr_by_kind"]


def test_an_organism_without_checkpoints_is_one_user_error(tiny_study, tiny_organism, tmp_path):
    bare = tmp_path / "organism"
    shutil.copytree(tiny_organism, bare, ignore=shutil.ignore_patterns("checkpoints"))
    with pytest.raises(UserError, match="holds no RL checkpoints") as caught:
        run_emergence(bare, tiny_study.experiment, tmp_path / "out", EmergenceConfig())
    assert "\n" not in str(caught.value)


def test_the_sample_keeps_at_most_the_cap_of_each_kind():
    records = [{"id": f"{k}{i}", "kind": k} for k in ("call", "not_offered", "chitchat") for i in range(10)]
    sample = calibration_sample(records, (6, 3, 20), seed=0)
    assert [sum(r["kind"] == k for r in sample) for k in ("call", "not_offered", "chitchat")] == [6, 3, 10]
    assert sample == calibration_sample(records, (6, 3, 20), seed=0)
    with pytest.raises(UserError, match="chitchat"):
        calibration_sample(records[:20], (6, 3, 3), seed=0)


def test_auto_picks_first_middle_last_and_kept_and_a_list_must_name_saved_steps():
    from tooldiff.experiment.emergence_retrain import pick_steps

    saved = [1, 2, 3, 4, 6, 8, 10, 14, 20, 40]
    assert pick_steps("auto", saved, kept=20) == [1, 8, 20, 40]
    assert pick_steps("auto", saved, kept=None) == [1, 8, 40]
    assert pick_steps("auto", [5, 20, 40], kept=5) == [5, 20, 40]
    assert pick_steps("", saved, kept=8) == []
    assert pick_steps("4, 20", saved, kept=None) == [4, 20]
    with pytest.raises(UserError, match=r"no saved RL checkpoint at step\(s\) \[5\]"):
        pick_steps("4,5", saved, kept=None)
    with pytest.raises(UserError, match="comma list"):
        pick_steps("early", saved, kept=None)


def test_first_passing_is_the_earliest_step_whose_latent_passes():
    from tooldiff.experiment.emergence_retrain import Retrained, first_passing

    def row(step, passes):
        return Retrained(step, "cc", 1, "a_excl", 0.8, 1.0, 0.5, 0.9, passes)

    assert first_passing([row(40, True), row(5, False), row(20, True)]) == 20
    assert first_passing([row(5, False)]) is None and first_passing([]) is None


def test_a_crosscoder_trained_at_the_kept_step_is_ranked_and_judged(tiny_study, tiny_organism, tmp_path):
    """`train_at`: harvest, train and rank on (checkpoint, base); with a bar of 0 an RL-exclusive
    top latent passes, so the first passing step is the one trained."""
    from tooldiff.crosscoder import Crosscoder
    from tooldiff.organism.checkpoints import checkpoint_file

    kept = load_organism(tiny_organism, models=False).info["rl_training"]["checkpoints"]["chosen_step"]
    result = run_emergence(tiny_organism, tiny_study.experiment, tmp_path,
                           EmergenceConfig(caps=(8, 4, 4), train_at=str(kept), min_auroc=0.0))
    [trained] = result.retrained
    assert trained.step == kept and trained.group == "a_excl" and trained.passes
    assert result.first_passing_step == kept and ">= 0" in result.selection
    cc = Crosscoder.load(trained.crosscoder)
    assert cc.info.models[0] == str(checkpoint_file(tiny_organism / "rl", kept))
    assert cc.cfg.model_dump(exclude={"d_model"}) == Crosscoder.load(
        tiny_study.crosscoders / result.crosscoder).cfg.model_dump(exclude={"d_model"})
    ranking = json.loads((tmp_path / "retrained" / f"step-{kept:04d}" / "features" / f"{result.crosscoder}.json")
                         .read_text())
    stats = next(r for r in ranking["latents"] if r["latent"] == trained.latent)
    assert trained.strict_auroc == stats["strict_auroc"] and -1 <= trained.cos_final <= 1
    assert "Crosscoders trained at single checkpoints" in (tmp_path / TABLE_FILE).read_text()
