"""`EXPERIMENT/experiment.json`, the experiment summary, as a typed artifact.

The experiment writes it once every condition is scored and analysed; the report and the
dashboard read it. Its one reader (`read_summary`) and one writer (`write_summary`) live here, so
an older or foreign file is a one-line UserError and not a KeyError in a page renderer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Optional, Union

from tooldiff.artifacts import Artifact, Num, Record, read_artifact, write_artifact
from tooldiff.features.ranking import FeatureRanking

SUMMARY_FILE = "experiment.json"


class Effect(Record):
    """A paired difference against `none` of the same model, with its 95 % bootstrap CI."""

    diff: Num
    ci95: list[Num]
    p_value: Optional[Num] = None
    n: int = 0


class Stat(Record):
    """A mean with its 95 % bootstrap CI."""

    mean: Optional[Num]
    ci95: list[Optional[Num]]


class Trigger(Record):
    """Whether the model calls when it should: precision, recall, F1 and false-positive rate."""

    precision: Optional[Num] = None
    recall: Optional[Num] = None
    f1: Optional[Num] = None
    fpr: Optional[Num] = None


class ModelMetrics(Record):
    """M of SPEC section 7: one condition's (or model's) scores on the test prompts."""

    n: int
    strict: Stat
    lenient: Stat
    trigger: Trigger
    calls_per_prompt: Num


class SweepRow(Record):
    """One cell of the sweep: mean and std of Δstrict over the crosscoders that ran it."""

    model: str
    intervention: str
    features: str  # "-", "top1" or "topN"
    alpha: Optional[Num] = None
    dose: Optional[Num] = None
    n_crosscoders: int
    mean_diff: Num
    std_diff: Num


class KindRates(Record):
    """Strict correctness and call rate on the test prompts of one request kind."""

    n: int
    strict: Num
    call_rate: Num


class Verdict(Record):
    """Does an effect's CI exclude 0, and does it beat its control panel (experiment.analysis)?"""

    excludes_zero: bool
    beats_controls: bool
    n_controls: int
    control_range: Optional[list[Num]] = None  # the controls' smallest and largest effect


class ConditionResult(Record):
    """One scored condition (a line of results.jsonl), with its effects and verdicts once analysed."""

    key: str
    model: str
    intervention: str
    crosscoder: Optional[str] = None
    features: list[Union[int, str]] = []  # latent ids, or direction labels such as "random:3"
    alpha: Optional[Num] = None
    dose: Optional[Num] = None
    positions: Optional[str] = None
    role: str  # effect | control_random | control_unrelated | baseline | reference
    controls: list[str] = []
    rivals: list[str] = []
    metrics: ModelMetrics
    valid: list[int] = []
    made_call: list[int] = []
    examples: list[dict[str, Any]] = []
    per_kind: Optional[dict[str, KindRates]] = None
    effect: Optional[dict[str, Effect]] = None  # metric -> effect against `none`; absent for `none` itself
    verdict: Optional[dict[str, Verdict]] = None  # metric -> verdict; effects with controls only

    def call_rate(self) -> float:
        """The share of test prompts on which the model made a call."""
        return sum(self.made_call) / len(self.made_call)


class PlantedCheck(Record):
    """The positive control's check of one crosscoder against the planted direction."""

    best_latent: int
    best_abs_cosine: Num
    best_group: str
    top_ranked_latent: Optional[int] = None
    top_ranked_abs_cosine: Optional[Num] = None
    planted_shift: Optional[Num] = None  # these four only when a latent was ranked top
    top_latent_part: Optional[Num] = None
    captured_share: Optional[Num] = None
    captured_n: Optional[int] = None


class SpliceLoss(Record):
    """The loss recovered of one splice: a crosscoder's reconstruction in one model, on one text set."""

    crosscoder: str
    model: str  # base | rl
    texts: str  # generic | tool_prompts
    positions: str  # all | last_prompt
    n_texts: int
    n_tokens: int  # predicted tokens the CE averages over (0 at last_prompt)
    ce_clean: Optional[Num] = None
    ce_splice: Optional[Num] = None
    ce_zero: Optional[Num] = None
    kl_splice: Num
    kl_zero: Num
    ce_recovered: Optional[Num] = None
    kl_recovered: Optional[Num] = None


class ExperimentSummary(Artifact):
    WHAT: ClassVar[str] = "experiment summary"
    RERUN: ClassVar[str] = "rerun `tooldiff experiment` with this version of tooldiff"

    layer: int
    n_test: int
    test_ids: list[str] = []
    config: dict[str, Any]
    conditions: list[ConditionResult]
    sweep: list[SweepRow]
    rankings: dict[str, FeatureRanking]
    crosscoders: dict[str, dict[str, Any]]  # name -> training metrics
    positive_control: dict[str, PlantedCheck] = {}
    splice_loss: list[SpliceLoss] = []  # the loss recovered of each reconstruction splice
    target: Optional[str] = None  # run_transfer: the model in the conditions' "base" slot (else the pair's base)

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))

    def reference(self, model: str) -> Optional[ConditionResult]:
        """The `none` condition of `model` (its metrics without intervention)."""
        return next((c for c in self.conditions if c.intervention == "none" and c.model == model), None)


def summary_of(fields: dict) -> ExperimentSummary:
    """The summary from the experiment's fields (rankings as `rank_features` returns them)."""
    rankings = {name: {"format": FeatureRanking.FORMAT, **r} for name, r in fields["rankings"].items()}
    return ExperimentSummary.new(**{**fields, "rankings": rankings})


def write_summary(summary: ExperimentSummary, experiment_dir: Path) -> Path:
    return write_artifact(summary, Path(experiment_dir) / SUMMARY_FILE)


def read_summary(experiment_dir: Path) -> ExperimentSummary:
    """The summary in `experiment_dir`; missing, old or foreign is a one-line UserError."""
    return read_artifact(ExperimentSummary, Path(experiment_dir) / SUMMARY_FILE)
