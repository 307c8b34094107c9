"""RL checkpoint selection (organism/checkpoints.py): the rule, and that a build records and uses it."""

from __future__ import annotations

import pytest

from tooldiff.organism.checkpoints import WRONG_CALLS_CAP, CheckpointScore, select_checkpoint, selection_prompts


def score(step: int, strict: float, not_offered: float, chitchat: float = 0.0) -> CheckpointScore:
    return CheckpointScore(step=step, call_strict=strict, wrong_calls={"not_offered": not_offered,
                                                                       "chitchat": chitchat}, n={"call": 100})


def test_the_best_admissible_checkpoint_is_kept_not_the_last():
    scores = [score(20, 0.40, 0.05), score(40, 0.78, 0.12), score(60, 0.85, 0.30), score(80, 0.70, 0.10)]
    assert select_checkpoint(scores).step == 40  # 60 calls too often; 80 is the last but worse


def test_ties_go_to_fewer_wrong_calls_then_to_the_earlier_step():
    assert select_checkpoint([score(20, 0.8, 0.10), score(40, 0.8, 0.05)]).step == 40
    assert select_checkpoint([score(20, 0.8, 0.05), score(40, 0.8, 0.05)]).step == 20


def test_the_cap_holds_for_every_no_call_kind_and_on_its_line():
    assert not score(1, 0.9, 0.0, WRONG_CALLS_CAP + 0.01).admissible
    assert score(1, 0.9, WRONG_CALLS_CAP, WRONG_CALLS_CAP).admissible


def test_without_an_admissible_checkpoint_the_fewest_wrong_calls_win():
    scores = [score(20, 0.9, 0.50), score(40, 0.2, 0.30, 0.25), score(60, 0.6, 0.30)]
    assert select_checkpoint(scores).step == 60  # worst kind 0.30 at 40 and 60; 60 is right more often
    with pytest.raises(ValueError):
        select_checkpoint([])


def test_selection_prompts_come_from_each_kind_in_split_order():
    split = [{"id": i, "kind": k} for i, k in enumerate(["call", "chitchat", "call", "not_offered", "call"])]
    picked = selection_prompts(split, {"call": 2, "not_offered": 5, "chitchat": 1})
    assert [r["id"] for r in picked] == [0, 2, 3, 1]


def test_a_build_records_its_scored_checkpoints_and_keeps_the_chosen_one(tiny_organism):
    """The tiny preset scores every 20 of its 40 steps: organism.json holds both scores and the
    step the rule chose; test data played no part (the scores' n are calibration counts)."""
    import json

    from tooldiff.organism import get_preset

    info = json.loads((tiny_organism / "organism.json").read_text())
    record = info["rl_training"]["checkpoints"]
    steps = [s["step"] for s in record["scores"]]
    assert steps == [20, 40]
    scores = [CheckpointScore(**s) for s in record["scores"]]
    assert record["chosen_step"] == select_checkpoint(scores).step
    calibration = get_preset("tiny").splits["calibration"]
    assert scores[0].n == {"call": calibration.call, "not_offered": calibration.not_offered,
                           "chitchat": calibration.chitchat}
