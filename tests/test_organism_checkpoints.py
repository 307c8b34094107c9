"""RL checkpoint selection (organism/checkpoints.py): the rule, and that a build records and uses it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tooldiff.errors import UserError
from tooldiff.organism.checkpoints import WRONG_CALLS_CAP, CheckpointScore, select_checkpoint


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


def test_checkpoint_steps_join_the_early_ones_the_regular_ones_and_the_last():
    from tooldiff.organism.config import RLConfig

    rl = RLConfig(steps=50, prompts_per_step=1, num_generations=2, lr=1e-4, eval_every=20, eval_early=(2, 5, 20, 60))
    assert rl.checkpoint_steps() == (2, 5, 20, 40, 50)
    assert replace(rl, eval_every=0).checkpoint_steps() == (2, 5, 20, 50)
    assert replace(rl, eval_every=0, eval_early=()).checkpoint_steps() == ()


def test_a_build_records_saves_and_keeps_its_scored_checkpoints(tiny_organism):
    """The tiny preset scores at steps 5, 20 and 40 of 40 on validation prompts: organism.json
    holds the scores and the step the rule chose, each checkpoint is saved, the chosen one is the
    twin, and test data played no part (the prompts that scored are validation ones)."""
    import json

    import torch

    from tooldiff.hf import load_model
    from tooldiff.organism import get_preset
    from tooldiff.organism.checkpoints import CHECKPOINTS_DIR, VALIDATION_FILE, load_checkpoint

    info = json.loads((tiny_organism / "organism.json").read_text())
    record = info["rl_training"]["checkpoints"]
    steps = [s["step"] for s in record["scores"]]
    assert steps == list(get_preset("tiny").rl.checkpoint_steps()) == [5, 20, 40]
    scores = [CheckpointScore(**s) for s in record["scores"]]
    assert record["chosen_step"] == select_checkpoint(scores).step
    assert scores[0].n == dict(zip(("call", "not_offered", "chitchat"), get_preset("tiny").rl.eval_prompts))
    prompts = (tiny_organism / "rl" / CHECKPOINTS_DIR / VALIDATION_FILE).read_text().splitlines()
    assert len(prompts) == sum(scores[0].n.values()) and all('"id": "validation-' in p for p in prompts)
    twin = load_model(tiny_organism / "rl").state_dict()
    for step in steps:
        same = all(torch.equal(v, twin[k]) for k, v in load_checkpoint(tiny_organism, step).state_dict().items())
        assert same == (step == record["chosen_step"]), step
    with pytest.raises(UserError, match="no RL checkpoint at step 7"):
        load_checkpoint(tiny_organism, 7)
