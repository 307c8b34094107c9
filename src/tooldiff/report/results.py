"""results.json exactly as SPEC §7 describes, plus the findings computed from the numbers.

`Results` is the file's typed model (format 1), with its one writer and reader (`write_results`,
`read_results`); the report, the demo, `tooldiff run`, the dashboard and the README read it
through them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Optional, Union

from tooldiff.artifacts import Artifact, Num, Record, read_artifact, write_artifact
from tooldiff.experiment.positive import PositiveSummary, crosscoder_kind  # noqa: F401 - the report's name for it
from tooldiff.experiment.summary import (ConditionResult, Effect, ExperimentSummary, KindRates, ModelMetrics,
                                         SpliceLoss, Stat, SweepRow, Verdict)

RESULTS_FILE = "results.json"
CONDITION_KEYS = ("model", "intervention", "crosscoder", "features", "alpha", "dose", "positions", "role",
                  "controls", "rivals", "key", "metrics", "per_kind", "effect", "verdict")
SINGLE_LATENT_OPS = ("steer", "ablate", "ablate_direction", "negative_steer")


class ReportCondition(Record):
    """A condition as results.json lists it: what it is, its metrics, effect and verdict."""

    model: str
    intervention: str
    crosscoder: Optional[str] = None
    features: list[Union[int, str]] = []
    alpha: Optional[Num] = None
    dose: Optional[Num] = None
    positions: Optional[str] = None
    role: Optional[str] = None
    controls: Optional[list[str]] = None
    rivals: Optional[list[str]] = None
    key: Optional[str] = None
    metrics: ModelMetrics
    per_kind: Optional[dict[str, KindRates]] = None
    effect: Optional[dict[str, Effect]] = None
    verdict: Optional[dict[str, Verdict]] = None


class TransferRow(Record):
    """A base `add` of an RL latent's decoder direction beside a difference-of-means rival."""

    crosscoder: Optional[str]
    dose: Optional[Num]
    latent: Union[int, str]
    latent_strict: Optional[Num]
    latent_call_rate_diff: Num
    rival: Union[int, str]
    rival_strict: Optional[Num]
    rival_call_rate_diff: Num


class ReconRow(Record):
    """The reconstruction splice with matched or mismatched normalization."""

    crosscoder: Optional[str]
    model: str
    normalization: str
    strict: Stat
    diff: Num
    ci95: list[Num]


class ClaimRow(Record):
    """One condition behind a claim: what it was, and its strict effect."""

    crosscoder: Optional[str]
    intervention: str
    features: list[Union[int, str]]
    alpha: Optional[Num]
    diff: Num
    ci95: list[Num]
    call_rate_by_kind: Optional[dict[str, list[Num]]] = None  # winners: [without, with] per request kind
    control_range: Optional[list[Num]] = None  # the largest: its control panel's range


class SingleLatentClaim(Record):
    holds: bool
    n_tried: int
    winners: list[ClaimRow]
    largest: Optional[ClaimRow] = None


class ValidatedClaim(Record):
    """The single-latent claim on the crosscoder kinds the positive control validated."""

    kinds: list[str]
    crosscoders: list[str]
    holds: bool
    n_tried: int
    winners: list[ClaimRow]
    largest: Optional[ClaimRow] = None


class Findings(Record):
    single_latent: SingleLatentClaim
    dfc_vs_dom: list[TransferRow]
    recon_artifact: list[ReconRow]
    single_latent_validated: Optional[ValidatedClaim] = None


class ClaimEntry(Record):
    """One of the paper's claims judged on this run alone (report/claims.py rules, no null pair)."""

    key: str
    claim: str
    paper: str
    seed: Optional[int] = None  # the organism seed; None: the claim's condition did not run
    diff: Optional[Num] = None  # Δstrict of the pre-registered condition
    ci95: Optional[list[Num]] = None
    n: Optional[int] = None
    holds: Optional[bool] = None  # CI excludes zero in the claimed direction and beats the controls
    rival_diff: Optional[Num] = None  # the difference-of-means rival at the same size
    verdict: str
    label: str  # the verdict with its reason or seed count, as the tables print it


class Results(Artifact):
    """results.json: the models, every condition, the features, the findings and the run's facts."""

    WHAT: ClassVar[str] = "results file"
    RERUN: ClassVar[str] = "rerun `tooldiff demo`, `tooldiff run` or `tooldiff experiment` with this version"

    models: dict[str, Optional[ModelMetrics]]  # base, rl: without intervention
    conditions: list[ReportCondition]
    features: dict[str, dict[str, Any]]
    crosscoders: dict[str, dict[str, Any]]
    sweep: list[SweepRow]
    findings: Findings
    positive_control: Optional[PositiveSummary] = None
    splice_loss: list[SpliceLoss] = []  # what each reconstruction splice costs next-token loss
    claims: list[ClaimEntry] = []  # the paper's claims judged on this run (report/claims_table.py)
    layer: int
    n_test: int
    seed: int
    organism: Optional[dict[str, Any]] = None  # organism.json of an organism's run
    organism_source: Optional[str] = None  # the demo's run facts from here on
    machine: Optional[str] = None
    finished_at: Optional[str] = None
    timings_s: Optional[dict[str, Num]] = None
    cpu_s: Optional[dict[str, Num]] = None
    wall_s: Optional[Num] = None
    study: Optional[dict[str, Any]] = None  # `tooldiff run`: the study config

    def with_facts(self, **facts) -> "Results":
        """These results with run facts (timings, machine, ...) added."""
        return Results.from_dict({**self.to_dict(), **facts}, "results with run facts")


def write_results(results: Results, out_dir: Path) -> Path:
    return write_artifact(results, Path(out_dir) / RESULTS_FILE)


def read_results(path: Path) -> Results:
    """results.json at `path`; missing, old or foreign is a one-line UserError."""
    return read_artifact(Results, Path(path))


def _condition(entry: ConditionResult) -> ReportCondition:
    raw = entry.model_dump(exclude_unset=True)
    return ReportCondition.model_validate({k: raw.get(k) for k in CONDITION_KEYS})


def _row(c: ReportCondition, **extra) -> dict:
    strict = c.effect["strict"]
    return {"crosscoder": c.crosscoder, "intervention": c.intervention, "features": c.features, "alpha": c.alpha,
            "diff": strict.diff, "ci95": strict.ci95, **extra}


def single_latent_claim(conditions: list[ReportCondition]) -> dict:
    """Does some single latent's steering or ablation move strict correctness with a 95 % CI that
    excludes 0 and beyond its control panel? Answered from the numbers, whichever way."""
    tried = [c for c in conditions if c.role == "effect" and c.intervention in SINGLE_LATENT_OPS
             and len(c.features) == 1 and c.verdict]
    winners = [c for c in tried if c.verdict["strict"].beats_controls]
    best = max(tried, key=lambda c: abs(c.effect["strict"].diff), default=None)
    none = {c.model: c for c in conditions if c.intervention == "none"}
    return {
        "holds": bool(winners),
        "n_tried": len(tried),
        "winners": [_row(c, call_rate_by_kind=_call_rates(none.get(c.model), c)) for c in winners],
        "largest": None if best is None else _row(best, control_range=best.verdict["strict"].control_range),
    }


def _validated_claim(conditions: list[ReportCondition], positive: PositiveSummary | None) -> dict | None:
    """The single-latent claim on the crosscoders whose kind passed the positive control only."""
    kinds = positive.validated_kinds if positive else []
    if not kinds:
        return None
    mine = [c for c in conditions if c.crosscoder is None or crosscoder_kind(c.crosscoder) in kinds]
    return {"kinds": kinds, "crosscoders": sorted({c.crosscoder for c in mine if c.crosscoder}),
            **single_latent_claim(mine)}


def _call_rates(none: ReportCondition | None, condition: ReportCondition) -> dict:
    """Call rate per request kind, [without intervention, with it]: where a strict effect comes from
    (more right calls, or calls where none belong)."""
    before, after = (none.per_kind if none else None) or {}, condition.per_kind or {}
    return {k: [before[k].call_rate, after[k].call_rate] for k in after if k in before}


def dfc_vs_dom(conditions: list[ReportCondition]) -> list[dict]:
    """Each base 'add' of a crosscoder direction beside the difference-of-means rivals at that dose."""
    by_key = {c.key: c for c in conditions}
    rows = []
    for eff in (c for c in conditions if c.model == "base" and c.intervention == "add"):
        for c in [by_key[k] for k in eff.rivals or [] if k in by_key]:
            rows.append({"crosscoder": eff.crosscoder, "dose": eff.dose, "latent": eff.features[0],
                         "latent_strict": eff.metrics.strict.mean,
                         "latent_call_rate_diff": eff.effect["call_rate"].diff,
                         "rival": c.features[0], "rival_strict": c.metrics.strict.mean,
                         "rival_call_rate_diff": c.effect["call_rate"].diff})
    return rows


def recon_artifact(conditions: list[ReportCondition]) -> list[dict]:
    """Matched vs mismatched normalization for the reconstruction splice (the paper's weak point 2)."""
    rows = []
    for c in conditions:
        if c.intervention in ("reconstruct", "reconstruct_mismatched"):
            strict = c.effect["strict"]
            rows.append({"crosscoder": c.crosscoder, "model": c.model, "normalization":
                         "mismatched" if c.intervention.endswith("mismatched") else "matched",
                         "strict": c.metrics.strict, "diff": strict.diff, "ci95": strict.ci95})
    return rows


def _features(experiment: ExperimentSummary) -> dict:
    return {name: {"best": r.best, "n": r.n, "top": [row.to_dict() for row in r.latents[:10]],
                   "least_related": r.least_related} for name, r in experiment.rankings.items()}


def build_results(experiment: ExperimentSummary, organism_info: dict | None = None,
                  positive: PositiveSummary | None = None) -> Results:
    conditions = [_condition(e) for e in experiment.conditions]
    none = {c.model: c.metrics for c in conditions if c.intervention == "none"}
    return Results.new(
        models={"base": none.get("base"), "rl": none.get("rl")},
        conditions=[c.to_dict() for c in conditions],
        features=_features(experiment),
        crosscoders=experiment.crosscoders,
        sweep=[row.to_dict() for row in experiment.sweep],
        findings={"single_latent": single_latent_claim(conditions), "dfc_vs_dom": dfc_vs_dom(conditions),
                  "recon_artifact": recon_artifact(conditions),
                  "single_latent_validated": _validated_claim(conditions, positive)},
        positive_control=positive.to_dict() if positive else None,
        splice_loss=[x.to_dict() for x in experiment.splice_loss],
        layer=experiment.layer,
        n_test=experiment.n_test,
        seed=experiment.seed,
        organism=organism_info,
    )
