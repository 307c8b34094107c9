"""The headroom twin: an RL checkpoint chosen on calibration, exported, steered with controls."""

import json

import pytest
import torch

from tooldiff.errors import UserError
from tooldiff.headroom import POSITIONS, TABLE_FILE, TRANSFER_DIR, HeadroomJob, export_checkpoint, headroom_step, run_headroom


def _emergence(path, strict_by_step: dict[int, float]):
    rows = [{"step": s, "calibration": {"strict": v}} for s, v in strict_by_step.items()]
    path.write_text(json.dumps({"rows": rows}))
    return path


def test_the_checkpoint_closest_to_a_quarter_is_chosen_and_never_the_base(tmp_path):
    table = _emergence(tmp_path / "emergence.json", {0: 0.25, 5: 0.4, 20: 0.2, 40: 0.9})
    assert headroom_step(table) == (20, 0.2)
    with pytest.raises(UserError, match="run `tooldiff emergence` first"):
        headroom_step(tmp_path / "missing.json")
    with pytest.raises(UserError, match="lists no RL checkpoint"):
        headroom_step(_emergence(tmp_path / "base-only.json", {0: 0.1}))


def test_an_exported_checkpoint_is_that_step_as_a_model_directory(tiny_organism, tmp_path):
    from tooldiff.hf import load_model, load_tokenizer
    from tooldiff.organism.checkpoints import load_checkpoint

    step = min(int(p.stem.removeprefix("step-")) for p in (tiny_organism / "rl" / "checkpoints").glob("step-*"))
    out = export_checkpoint(tiny_organism, step, tmp_path / "model")
    exported, saved = load_model(out).state_dict(), load_checkpoint(tiny_organism, step).state_dict()
    assert exported.keys() == saved.keys() and all(torch.equal(exported[k], saved[k]) for k in saved)
    assert load_tokenizer(out) is not None and not (out / "checkpoints").exists()


def test_the_headroom_run_steers_the_checkpoint_at_both_positions_and_takes_the_final_latent(tiny_study, tmp_path):
    """The final twin's top latent (its crosscoders, its selection) goes into the checkpoint: the
    transfer's unsteered "base" slot is the checkpoint itself, on the same test prompts."""
    from tooldiff.experiment.summary import read_summary

    steps = sorted(int(p.stem.removeprefix("step-")) for p in (tiny_study.organism / "rl" / "checkpoints").glob("step-*"))
    table = _emergence(tmp_path / "emergence.json", {0: 0.0, **{s: 0.9 for s in steps}, steps[0]: 0.3})
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(tiny_study.SWEEP)
    out = tmp_path / "headroom"
    path = run_headroom(HeadroomJob(tiny_study.pair, tiny_study.organism, table, sweep, tiny_study.config, out,
                                    transfer_from=tiny_study.crosscoders))
    text = path.read_text()
    assert path.name == TABLE_FILE and f"RL step {steps[0]}" in text
    for positions in POSITIONS:
        assert f"## Steering at positions: {positions}" in text
    assert text.count("| 16 |") >= 2  # the grid's alpha 16 at both positions
    assert text.count("on its call prompts") == len(POSITIONS) + 1  # the paper's baseline is on tool prompts
    transfer, steered = read_summary(out / TRANSFER_DIR), read_summary(out / POSITIONS[0] / "experiment")
    assert transfer.target == str(out / "model")
    assert {c.intervention for c in transfer.conditions} == {"none", "add"}
    assert transfer.reference("base").metrics.strict.mean == steered.reference("rl").metrics.strict.mean
    assert transfer.rankings.keys() == read_summary(tiny_study.experiment).rankings.keys()
    assert "(transfer)" in text and text.count("| 0.5 |") == len(transfer.rankings)  # one row per crosscoder at dose 0.5
