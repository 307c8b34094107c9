"""RL checkpoint selection (organism/checkpoints.py): the rule, and that a build records and uses it."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from tooldiff.errors import UserError
from tooldiff.organism.checkpoints import WRONG_CALLS_TARGET, CheckpointScore, select_checkpoint, wilson_upper


def score(step: int, strict: float, not_offered: float, chitchat: float = 0.0, n: int = 100) -> CheckpointScore:
    return CheckpointScore(step=step, call_strict=strict, wrong_calls={"not_offered": not_offered, "chitchat": chitchat},
                           n={"call": n, "not_offered": n, "chitchat": n})


def test_the_best_admissible_checkpoint_is_kept_not_the_last():
    scores = [score(20, 0.40, 0.05), score(40, 0.78, 0.12), score(60, 0.85, 0.30), score(80, 0.70, 0.10)]
    assert select_checkpoint(scores).step == 40  # 60 calls too often; 80 is the last but worse


def test_ties_go_to_fewer_wrong_calls_then_to_the_earlier_step():
    assert select_checkpoint([score(20, 0.8, 0.10), score(40, 0.8, 0.05)]).step == 40
    assert select_checkpoint([score(20, 0.8, 0.05), score(40, 0.8, 0.05)]).step == 20


def test_wrong_calls_must_be_credibly_below_the_target_on_every_no_call_kind():
    """The Wilson upper bound, not the rate, meets the target: 12 % of 100 passes, of 50 not;
    13 % of 100 does not, on either kind."""
    assert wilson_upper(0.12, 100) <= WRONG_CALLS_TARGET < wilson_upper(0.12, 50)
    assert score(1, 0.9, 0.12, 0.12).admissible and not score(1, 0.9, 0.12, 0.12, n=50).admissible
    assert not score(1, 0.9, 0.0, 0.13).admissible and not score(1, 0.9, 0.13, 0.0).admissible
    assert abs(wilson_upper(0.0, 60) - 0.0602) < 1e-4 and wilson_upper(0.5, 0) == 1.0


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
    """The tiny preset scores at steps 5, 20 and 40 of 40 on calibration + validation prompts:
    organism.json holds the scores and the step the rule chose, each checkpoint is saved, the
    chosen one is the twin, and test data played no part (the prompts that scored are listed)."""
    import json

    import torch

    from tooldiff.hf import load_model
    from tooldiff.organism import get_preset
    from tooldiff.organism.checkpoints import CHECKPOINTS_DIR, SELECTION_FILE, load_checkpoint

    info = json.loads((tiny_organism / "organism.json").read_text())
    record = info["rl_training"]["checkpoints"]
    steps = [s["step"] for s in record["scores"]]
    assert steps == list(get_preset("tiny").rl.checkpoint_steps()) == [5, 20, 40]
    scores = [CheckpointScore(**s) for s in record["scores"]]
    assert record["chosen_step"] == select_checkpoint(scores).step
    per_kind = get_preset("tiny").rl.eval_prompts  # from each source: calibration and validation
    assert scores[0].n == {k: 2 * n for k, n in zip(("call", "not_offered", "chitchat"), per_kind)}
    prompts = (tiny_organism / "rl" / CHECKPOINTS_DIR / SELECTION_FILE).read_text().splitlines()
    assert len(prompts) == sum(scores[0].n.values())
    assert sum('"id": "validation-' in p for p in prompts) == sum('"id": "calibration-' in p for p in prompts)
    twin = load_model(tiny_organism / "rl").state_dict()
    for step in steps:
        same = all(torch.equal(v, twin[k]) for k, v in load_checkpoint(tiny_organism, step).state_dict().items())
        assert same == (step == record["chosen_step"]), step
    with pytest.raises(UserError, match="no RL checkpoint at step 7"):
        load_checkpoint(tiny_organism, 7)


def test_average_weights_is_the_mean_of_float_tensors_and_keeps_the_last_integer_ones():
    from tooldiff.organism.checkpoints import average_weights

    states = [{"w": torch.tensor([1.0, 3.0]), "i": torch.tensor([1])},
              {"w": torch.tensor([3.0, 6.0]), "i": torch.tensor([2])}]
    out = average_weights(states)
    assert out["w"].tolist() == [2.0, 4.5] and out["i"].tolist() == [2] and out["w"].dtype == torch.float32


@pytest.mark.parametrize("average_wrong, kept_weight, averaged", [(0.0, 30.0, (20, 40)), (0.3, 40.0, ())])
def test_the_average_is_kept_when_its_wrong_calls_pass_the_bound_else_the_best_checkpoint(
        monkeypatch, average_wrong, kept_weight, averaged):
    """Rule point 0: steps 20 and 40 are averaged (weight 30); step 1 is before `average_from`."""
    from tooldiff.organism import checkpoints

    by_weight = {1.0: score(1, 0.5, 0.0), 20.0: score(20, 0.8, 0.05), 40.0: score(40, 0.95, 0.10),
                 30.0: score(40, 0.9, average_wrong)}
    monkeypatch.setattr(checkpoints, "score_model", lambda model, *a, **k: by_weight[float(model.weight.detach())])
    model = torch.nn.Linear(1, 1, bias=False)
    keeper = checkpoints.CheckpointKeeper(model, None, [], seed=0, batch_size=1, average_from=20)
    for step in (1, 20, 40):
        with torch.no_grad():
            model.weight.fill_(float(step))
        keeper(step)
    kept = keeper.restore_best()
    assert kept.averaged == averaged and float(model.weight.detach()) == kept_weight
    record = keeper.summary(kept)
    assert record["average"]["steps"] == [20, 40] and record["average"]["kept"] == bool(averaged)
    assert record["chosen_step"] == (None if averaged else 40)
