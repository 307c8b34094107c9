"""RL checkpoints scored on the calibration split, and the rule that keeps one.

The RL stage sits on a knife edge: the same recipe, seed and command gave twins tens of points
apart on two CPUs (docs/notes/2026-12-05-organism.md), because float sums in another order send
sampling down another path. Where the last step lands is luck; what the run passes through on
the way is not. So the RL stage scores the twin on calibration prompts every `eval_every` steps
(and at the last step) and keeps the best checkpoint by a fixed rule. This is the RL analogue of
the base's copy check, and like it, it reads the calibration split only: test data never chooses.

The rule (docs/organism.md, "Which RL checkpoint is kept"):
1. admissible: wrong calls at most WRONG_CALLS_CAP on every no-call kind (not offered, chit-chat);
2. among those, the highest strict accuracy on call prompts; ties to fewer wrong calls, then to
   the earlier step;
3. if none is admissible, the fewest wrong calls on the worst kind (ties: higher strict, earlier).
The cap sits below the targets' 20 % so that a checkpoint chosen at the line on calibration
does not cross it on test by chance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

WRONG_CALLS_CAP = 0.15
NO_CALL_KINDS = ("not_offered", "chitchat")


@dataclass(frozen=True)
class CheckpointScore:
    """One RL checkpoint on the calibration prompts."""

    step: int
    call_strict: float  # strict accuracy on prompts that need a call
    wrong_calls: dict[str, float]  # share of prompts of each no-call kind answered with a call
    n: dict[str, int]  # prompts per kind

    @property
    def worst_wrong(self) -> float:
        return max(self.wrong_calls.values(), default=0.0)

    @property
    def admissible(self) -> bool:
        return self.worst_wrong <= WRONG_CALLS_CAP

    def to_dict(self) -> dict:
        return asdict(self)


def select_checkpoint(scores: list[CheckpointScore]) -> CheckpointScore:
    """The checkpoint the rule in the module docstring keeps."""
    if not scores:
        raise ValueError("no RL checkpoint was scored")
    admissible = [s for s in scores if s.admissible]
    if admissible:
        return max(admissible, key=lambda s: (s.call_strict, -s.worst_wrong, -s.step))
    return min(scores, key=lambda s: (s.worst_wrong, -s.call_strict, s.step))


def selection_prompts(calibration: list[dict], per_kind: dict[str, int]) -> list[dict]:
    """The first `per_kind[kind]` calibration prompts of each kind (the split is shuffled already)."""
    chosen = []
    for kind, n in per_kind.items():
        chosen += [r for r in calibration if r["kind"] == kind][:n]
    return chosen


def score_model(model, tokenizer, prompts: list[dict], step: int, seed: int, batch_size: int) -> CheckpointScore:
    """Greedy outputs of the model on `prompts`, scored strictly (the build's own evaluate)."""
    from tooldiff.organism.measure import evaluate

    was_training = model.training
    model.eval()
    metrics, _ = evaluate(model, tokenizer, prompts, seed, batch_size, f"calibration, RL step {step}")
    model.train(was_training)
    by_kind = metrics["by_kind"]
    return CheckpointScore(step=step, call_strict=by_kind["call"]["strict"]["mean"],
                           wrong_calls={k: by_kind[k]["call_rate"]["mean"] for k in NO_CALL_KINDS if k in by_kind},
                           n={k: v["strict"]["n"] for k, v in by_kind.items()})


class CheckpointKeeper:
    """Scores the model at chosen steps, keeps a copy of its weights at each, restores the chosen one."""

    def __init__(self, model, tokenizer, prompts: list[dict], seed: int, batch_size: int):
        self.model, self.tokenizer, self.prompts = model, tokenizer, prompts
        self.seed, self.batch_size = seed, batch_size
        self.scores: list[CheckpointScore] = []
        self.weights: dict[int, dict[str, torch.Tensor]] = {}

    def __call__(self, step: int) -> None:
        if step in self.weights:
            return
        with torch.no_grad():
            self.scores.append(score_model(self.model, self.tokenizer, self.prompts, step, self.seed,
                                           self.batch_size))
        self.weights[step] = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def restore_best(self) -> CheckpointScore:
        """Load the chosen checkpoint's weights into the model; returns its score."""
        best = select_checkpoint(self.scores)
        self.model.load_state_dict(self.weights[best.step])
        return best

    def summary(self, best: CheckpointScore) -> dict:
        return {"rule": f"wrong calls <= {WRONG_CALLS_CAP} on every no-call kind, then the highest strict on "
                        "call prompts (calibration split; docs/organism.md)",
                "chosen_step": best.step, "scores": [s.to_dict() for s in self.scores]}
