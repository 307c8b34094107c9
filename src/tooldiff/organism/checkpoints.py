"""RL checkpoints scored on calibration and validation prompts, saved, and the rule that keeps one.

The RL stage sits on a knife edge: the same recipe, seed and command gave twins tens of points
apart on two CPUs (docs/notes/2026-12-05-organism.md), because float sums in another order send
sampling down another path. Where the last step lands is luck; what the run passes through on
the way is not. So the RL stage scores the twin at `RLConfig.checkpoint_steps()` and keeps the
best checkpoint by a fixed rule. This is the RL analogue of the base's copy check.

It scores on selection prompts from two sources, pooled: the first prompts of each kind of the
calibration split (RL's own phrasings) and as many validation prompts (requests.validation_split:
phrasings that no split uses, training values). Test data never chooses. Why both: calibration
prompts cannot show refusals of new phrasings, and validation prompts alone were too noisy a
guard on wrong calls (the measurements: docs/notes/2026-12-05-organism.md).

The rule (docs/organism.md, "Which RL checkpoint is kept"):
0. with `RLConfig.average_from` set: the uniform average of the checkpoints saved from that step
   on, scored on the same prompts, is kept if it is admissible (point 1); else points 1-3 choose.
   Why: along RL the twin swings between calling more and calling less from one checkpoint to the
   next, and the most accurate checkpoint under a bound sits at a swing's call-happy end. The
   average sits in the middle of the swings (stochastic weight averaging, Izmailov et al. 2018;
   measured in docs/notes/2026-12-06-amd-reship.md);
1. admissible: wrong calls credibly below WRONG_CALLS_TARGET on every no-call kind (not offered,
   chit-chat): the upper bound of the rate's 95 % Wilson interval at most the target;
2. among those, the highest strict accuracy on call prompts; ties to fewer wrong calls, then to
   the earlier step;
3. if none is admissible, the fewest wrong calls on the worst kind (ties: higher strict, earlier).
Why a bound and not the rate: picking the most accurate of many checkpoints whose wrong-call
rate sits under a cap picks the ones whose estimate came out low by chance, and the more a
checkpoint calls, the more accurate it is. With 120 prompts per kind, the bound admits a rate
of at most 12.5 %.

Every scored checkpoint is saved to `rl/checkpoints/step-NNNN.safetensors` beside the prompts
that scored it (`selection.jsonl`): the twin's path through RL, for studies of how tool use
emerges (`load_checkpoint`). The shipped pair leaves them out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from tooldiff.errors import UserError
from tooldiff.prompts import REQUEST_KINDS

WRONG_CALLS_TARGET = 0.20  # the recipe's target for wrong calls on each no-call kind (issue 20)
CHECKPOINTS_DIR = "checkpoints"  # under rl/
SELECTION_FILE = "selection.jsonl"


@dataclass(frozen=True)
class CheckpointScore:
    """One RL checkpoint on the selection prompts."""

    step: int
    call_strict: float  # strict accuracy on prompts that need a call
    wrong_calls: dict[str, float]  # share of prompts of each no-call kind answered with a call
    n: dict[str, int]  # prompts per kind

    @property
    def worst_wrong(self) -> float:
        return max(self.wrong_calls.values(), default=0.0)

    @property
    def admissible(self) -> bool:
        return all(wilson_upper(rate, self.n.get(kind, 0)) <= WRONG_CALLS_TARGET
                   for kind, rate in self.wrong_calls.items())

    def to_dict(self) -> dict:
        return asdict(self)


def wilson_upper(rate: float, n: int, z: float = 1.96) -> float:
    """Upper bound of the Wilson score interval of a share `rate` of `n` (1.0 when n is 0)."""
    if n <= 0:
        return 1.0
    centre = rate + z * z / (2 * n)
    spread = z * (rate * (1 - rate) / n + z * z / (4 * n * n)) ** 0.5
    return (centre + spread) / (1 + z * z / n)


def select_checkpoint(scores: list[CheckpointScore]) -> CheckpointScore:
    """The checkpoint the rule in the module docstring keeps."""
    if not scores:
        raise ValueError("no RL checkpoint was scored")
    admissible = [s for s in scores if s.admissible]
    if admissible:
        return max(admissible, key=lambda s: (s.call_strict, -s.worst_wrong, -s.step))
    return min(scores, key=lambda s: (s.worst_wrong, -s.call_strict, s.step))


def selection_prompts(calibration: list[dict], mix) -> list[dict]:
    """The first `mix.<kind>` calibration prompts of each kind (the split is shuffled already)."""
    chosen = []
    for kind in REQUEST_KINDS:
        chosen += [r for r in calibration if r["kind"] == kind][:getattr(mix, kind)]
    return chosen


def score_model(model, tokenizer, prompts: list[dict], step: int, seed: int, batch_size: int,
                label: str | None = None) -> CheckpointScore:
    """Greedy outputs of the model on `prompts`, scored strictly (the build's own evaluate)."""
    from tooldiff.organism.measure import evaluate

    was_training = model.training
    model.eval()
    metrics, _ = evaluate(model, tokenizer, prompts, seed, batch_size, label or f"selection prompts, RL step {step}")
    model.train(was_training)
    by_kind = metrics["by_kind"]
    return CheckpointScore(step=step, call_strict=by_kind["call"]["strict"]["mean"],
                           wrong_calls=metrics["fpr_by_kind"], n={k: v["strict"]["n"] for k, v in by_kind.items()})


def average_weights(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The uniform average of state dicts (summed in float64); a non-float tensor is the last one's."""
    last = states[-1]
    return {k: (sum(s[k].double() for s in states) / len(states)).to(v.dtype) if v.is_floating_point() else v
            for k, v in last.items()}


@dataclass(frozen=True)
class Kept:
    """What the RL stage keeps: one checkpoint, or the average of `averaged` steps; its score."""

    score: CheckpointScore
    averaged: tuple[int, ...] = ()

    def describe(self, steps: int) -> str:
        what = (f"the average of steps {self.averaged[0]}-{self.averaged[-1]} ({len(self.averaged)} checkpoints)"
                if self.averaged else f"step {self.score.step}")
        return f"{what} of {steps}"


class CheckpointKeeper:
    """Scores the model at chosen steps, keeps a copy of its weights at each, restores the chosen
    one or the average (rule point 0)."""

    def __init__(self, model, tokenizer, prompts: list[dict], seed: int, batch_size: int, average_from: int = 0):
        self.model, self.tokenizer, self.prompts = model, tokenizer, prompts
        self.seed, self.batch_size, self.average_from = seed, batch_size, average_from
        self.scores: list[CheckpointScore] = []
        self.weights: dict[int, dict[str, torch.Tensor]] = {}
        self.average: CheckpointScore | None = None  # the average's score (step: its last step)

    def __call__(self, step: int) -> None:
        if step in self.weights:
            return
        with torch.no_grad():
            self.scores.append(score_model(self.model, self.tokenizer, self.prompts, step, self.seed,
                                           self.batch_size))
        self.weights[step] = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def restore_best(self) -> Kept:
        """Load what the rule keeps into the model: the average if admissible, else the best checkpoint."""
        steps = tuple(sorted(s for s in self.weights if s >= self.average_from)) if self.average_from else ()
        if steps:
            self.model.load_state_dict(average_weights([self.weights[s] for s in steps]))
            with torch.no_grad():
                self.average = score_model(self.model, self.tokenizer, self.prompts, steps[-1], self.seed,
                                           self.batch_size, label=f"selection prompts, average of {len(steps)}")
            if self.average.admissible:
                return Kept(self.average, steps)
        best = select_checkpoint(self.scores)
        self.model.load_state_dict(self.weights[best.step])
        return Kept(best)

    def save(self, rl_dir: Path) -> None:
        """Every scored checkpoint's weights, and the prompts that scored them, under `rl_dir`."""
        from safetensors.torch import save_file

        from tooldiff.organism.store import write_jsonl

        out = rl_dir / CHECKPOINTS_DIR
        out.mkdir(parents=True, exist_ok=True)
        write_jsonl(out / SELECTION_FILE, self.prompts)
        for step, weights in self.weights.items():
            save_file(weights, str(checkpoint_file(rl_dir, step)), metadata={"format": "pt", "step": str(step)})

    def summary(self, kept: Kept) -> dict:
        bound = f"wrong calls' 95 % Wilson upper bound <= {WRONG_CALLS_TARGET} on every no-call kind"
        rule = f"{bound}, then the highest strict on call prompts (calibration + validation prompts; docs/organism.md)"
        if self.average_from:
            rule = f"the average of the checkpoints from step {self.average_from} on if its {bound}; else {rule}"
        record = {"rule": rule, "chosen_step": None if kept.averaged else kept.score.step,
                  "scores": [s.to_dict() for s in self.scores], "saved": f"rl/{CHECKPOINTS_DIR}"}
        if self.average is not None:
            steps = sorted(s for s in self.weights if s >= self.average_from)
            record["average"] = {"steps": steps, "kept": bool(kept.averaged)} | self.average.to_dict()
        return record


def checkpoint_file(rl_dir: Path, step: int) -> Path:
    return rl_dir / CHECKPOINTS_DIR / f"step-{step:04d}.safetensors"


def load_checkpoint(organism_dir: Path, step: int):
    """The twin as it was at RL step `step` (a model loaded from the RL twin's config)."""
    from safetensors.torch import load_file

    from tooldiff.hf import load_model

    path = checkpoint_file(Path(organism_dir) / "rl", step)
    if not path.is_file():
        raise UserError(f"{path} is missing: this organism saved no RL checkpoint at step {step} "
                        "(a shipped pair holds none; build one with `tooldiff organism --out DIR`)")
    model = load_model(Path(organism_dir) / "rl")
    model.load_state_dict(load_file(str(path)))
    return model
