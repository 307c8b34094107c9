"""Every read of a run's artifacts the dashboard makes, in one place, as typed records.

The pages never open a file: they render what `load_run` returns. The run's artifacts are read
through their own typed readers (experiment.summary, features.ranking, report.results), which
refuse an old or foreign file with one line; this module maps them to what the pages show.

What is read, and from where (`RunPaths` says where; `find_paths` fills in the defaults):
- `EXPERIMENT/experiment.json`: conditions with their effects, verdicts and examples, the
  crosscoders' training metrics, the positive-control check (a rank1 study's);
- `EXPERIMENT/features/<crosscoder>.json`: each crosscoder's ranking, through the ranking's own
  reader (`features.ranking.read_ranking`, which checks it belongs to the checkpoint);
- `EXPERIMENT/calibration.jsonl` and `EXPERIMENT/calibration_acts/`: the calibration prompts and
  their decision-position activations (the rows the ranking was computed on);
- the crosscoder checkpoints (default: the run layout's `RUN/crosscoders/<name>`), whose
  config records the model pair;
- the test prompts (default: the organism beside the RL model the crosscoders name, else the
  study's RUN/data/test.jsonl);
- `results.json` (default: `EXPERIMENT/results.json`, where `tooldiff experiment` writes it) for the
  findings and the positive-control verdict; without it the findings are computed by
  `report.results.build_results` from the experiment, as results.json's are.

An experiment directory without experiment.json, or one written by an older tooldiff (no format
number, or a field the dashboard needs is missing), is a one-line `UserError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from tooldiff.artifacts import read_json
from tooldiff.errors import UserError
from tooldiff.experiment.data import CALIBRATION_FILE
from tooldiff.experiment.summary import SUMMARY_FILE, ConditionResult, ExperimentSummary, read_summary
from tooldiff.experiment.summary import Effect as SummaryEffect, PlantedCheck as SummaryPlanted
from tooldiff.features.ranking import RUN_CROSSCODERS, ranking_file, read_ranking
from tooldiff.report.results import RESULTS_FILE, read_results

RESULTS_JSONL, CALIBRATION_ACTS = "results.jsonl", "calibration_acts"
METRICS = ("strict", "call_rate")


# --- where the run's pieces are -------------------------------------------------------------
@dataclass(frozen=True)
class RunPaths:
    """The experiment directory and the pieces it does not hold (None: found by `find_paths`)."""

    experiment: Path
    crosscoders: Optional[Path] = None  # a directory of checkpoints, or one checkpoint
    organism: Optional[Path] = None  # for the test prompts
    results: Optional[Path] = None  # results.json (findings, positive-control verdict)
    positive: Optional[Path] = None  # the positive control's experiment directory (rank1 study)


# --- typed records the pages render ---------------------------------------------------------
@dataclass(frozen=True)
class Effect:
    """A paired difference against `none` of the same model, with its 95 % bootstrap CI."""

    diff: float
    lo: float
    hi: float
    p_value: Optional[float]
    n: int


@dataclass(frozen=True)
class Example:
    id: str
    output: str


@dataclass(frozen=True)
class Condition:
    key: str
    model: str
    intervention: str
    crosscoder: Optional[str]
    features: tuple  # latent ids, or labels such as "random:3" / "dom:call_vs_nocall"
    alpha: Optional[float]
    dose: Optional[float]
    role: str
    controls: tuple[str, ...]
    rivals: tuple[str, ...]
    metrics: dict  # M of SPEC section 7
    per_kind: dict  # kind -> {"n", "strict", "call_rate"}
    effect: dict[str, Effect]  # strict / call_rate; empty for `none`
    verdict: dict  # metric -> {"excludes_zero", "beats_controls", ...}; empty without controls
    examples: tuple[Example, ...]

    @property
    def label(self) -> str:
        knob = (f" α={self.alpha:g}" if self.alpha is not None else "") + (f" c={self.dose:g}" if self.dose is not None else "")
        feats = ",".join(str(f) for f in self.features)
        return f"{self.model} {self.intervention}{' ' + feats if feats else ''}{knob}"


@dataclass(frozen=True)
class LatentStats:
    """One row of a crosscoder's feature ranking (features/ranking.py), in ranking order."""

    latent: int
    rank: int
    group: str
    rl_dominant: bool
    delta: float
    rl_norm_share: float
    strict_d: float
    strict_auroc: float
    paper_d: Optional[float]
    paper_auroc: Optional[float]
    nu_eps: float
    nu_r: float
    firing: dict[str, float]


@dataclass(frozen=True)
class Histogram:
    counts: list[int]
    edges: list[float]


@dataclass(frozen=True)
class TrainMetrics:
    """A crosscoder's training metrics (metrics.json), as the experiment summary holds them."""

    fve: dict[str, float]
    l0: Optional[float]
    dead_frac: Optional[float]
    partition: dict[str, int]
    delta_hist: Optional[Histogram]
    shared_cosine_hist: Optional[Histogram]
    history: list[dict]  # {"step", "loss", "mse", ...}
    step: Optional[int]


@dataclass(frozen=True)
class PlantedCheck:
    """The positive control on one crosscoder: which latent is the planted direction."""

    best_latent: int
    best_abs_cosine: float
    best_group: str
    top_ranked_latent: Optional[int]
    top_ranked_abs_cosine: Optional[float]
    captured_share: Optional[float]


@dataclass
class CrosscoderRun:
    name: str
    directory: Path
    dict_size: int
    layer: Optional[int]
    models: tuple[str, str]  # (rl, base) as recorded at harvest
    train: TrainMetrics
    latents: list[LatentStats]  # ranking order
    best: dict  # contrast -> group -> latent
    least_related: list[int]
    planted: Optional[PlantedCheck] = None


@dataclass(frozen=True)
class Prompt:
    id: str
    kind: str
    split: str  # calibration | test
    record: dict  # the prompt record (messages and tools, or text)

    @property
    def request(self) -> str:
        """What the user asked (generic text: the text itself)."""
        if "messages" in self.record:
            return self.record["messages"][-1].get("content") or ""
        return self.record.get("text", "")


@dataclass(frozen=True)
class ClaimRow:
    crosscoder: str
    intervention: str
    features: tuple
    alpha: Optional[float]
    diff: float
    lo: float
    hi: float


@dataclass(frozen=True)
class Findings:
    """What results.json concludes (report/results.py), as the index shows it."""

    single_latent_holds: bool
    single_latent_tried: int
    winners: list[ClaimRow]
    largest: Optional[ClaimRow]
    transfer: list[dict]  # dfc_vs_dom rows
    recon: list[dict]  # recon_artifact rows
    positive: Optional[dict]  # results.json's positive_control verdict, if the run had one
    source: str  # the file, or "computed from experiment.json"


@dataclass
class Study:
    """One experiment directory, read."""

    paths: RunPaths
    layer: int
    n_test: int
    seed: int
    config: dict
    conditions: list[Condition]
    crosscoders: dict[str, CrosscoderRun]
    rl_path: Path
    base_path: Path
    test_ids: list[str]
    prompts: list[Prompt] = field(default_factory=list)  # calibration, then test (filled by `load_run`)

    def condition(self, key: str) -> Optional[Condition]:
        return self._by_key.get(key)

    def __post_init__(self) -> None:
        self._by_key = {c.key: c for c in self.conditions}

    def reference(self, model: str) -> Optional[Condition]:
        return next((c for c in self.conditions if c.model == model and c.intervention == "none"), None)


@dataclass
class Run:
    """What the dashboard shows: the study ("main") and its positive control ("positive", a rank1
    study, if given), the findings, and notes on what could not be found."""

    studies: dict[str, Study]
    findings: Findings
    notes: list[str] = field(default_factory=list)

    @property
    def main(self) -> Study:
        return self.studies["main"]


# --- reading --------------------------------------------------------------------------------
def load_run(paths: RunPaths) -> Run:
    """Read the experiment (and its positive control) with every default resolved."""
    paths = find_paths(paths)
    notes: list[str] = []
    studies = {"main": load_study(paths)}
    if paths.positive:
        studies["positive"] = load_study(find_paths(RunPaths(paths.positive)))
    for study in studies.values():
        study.prompts = read_calibration_prompts(study.paths.experiment) + read_test_prompts(study, notes)
    return Run(studies, read_findings(paths, notes), notes)


def find_paths(paths: RunPaths) -> RunPaths:
    """Check the experiment directory is one, and fill in where the crosscoders and results are."""
    exp = Path(paths.experiment)
    if not exp.is_dir():
        raise UserError(f"experiment directory {exp} does not exist")
    if not (exp / SUMMARY_FILE).is_file():
        if (exp / RESULTS_JSONL).is_file():
            raise UserError(f"the experiment in {exp} did not finish: it has {RESULTS_JSONL} but no {SUMMARY_FILE}; "
                            "rerun the same `tooldiff experiment` command to finish it")
        raise UserError(f"{exp} holds no experiment results ({SUMMARY_FILE} is missing): "
                        "run `tooldiff experiment` (or `tooldiff demo`) first")
    crosscoders = paths.crosscoders or exp.resolve().parent / RUN_CROSSCODERS
    results = paths.results or (exp / RESULTS_FILE if (exp / RESULTS_FILE).is_file() else None)
    return RunPaths(exp, Path(crosscoders), paths.organism, results, paths.positive)


def load_study(paths: RunPaths) -> Study:
    path = paths.experiment / SUMMARY_FILE
    summary = read_summary(paths.experiment)
    conditions = [_condition(c) for c in summary.conditions]
    crosscoders = {n: _crosscoder(paths, n, summary) for n in sorted(summary.rankings)}
    if not crosscoders:
        raise UserError(f"{path} ranks no crosscoder: nothing to show")
    rl, base = next(iter(crosscoders.values())).models
    return Study(paths, summary.layer, summary.n_test, summary.seed, summary.config, conditions, crosscoders,
                 Path(rl), Path(base), list(summary.test_ids))


def _effect(raw: SummaryEffect) -> Effect:
    return Effect(raw.diff, raw.ci95[0], raw.ci95[1], raw.p_value, int(raw.n))


def _dicts(records: Optional[dict]) -> dict:
    """{name: record} as the plain dicts the pages embed."""
    return {k: v.to_dict() for k, v in (records or {}).items()}


def _condition(raw: ConditionResult) -> Condition:
    effect = raw.effect or {}
    return Condition(
        key=raw.key, model=raw.model, intervention=raw.intervention, crosscoder=raw.crosscoder,
        features=tuple(raw.features), alpha=raw.alpha, dose=raw.dose, role=raw.role, controls=tuple(raw.controls),
        rivals=tuple(raw.rivals), metrics=raw.metrics.to_dict(), per_kind=_dicts(raw.per_kind),
        effect={m: _effect(effect[m]) for m in METRICS if m in effect}, verdict=_dicts(raw.verdict),
        examples=tuple(Example(e["id"], e["output"]) for e in raw.examples))


def checkpoint_of(paths: RunPaths, name: str) -> Path:
    """Crosscoder `name`'s checkpoint: `crosscoders` itself (one checkpoint) or `crosscoders/name`."""
    from tooldiff.experiment.run import existing_checkpoint

    return existing_checkpoint(Path(paths.crosscoders), name, paths.experiment)


def _crosscoder(paths: RunPaths, name: str, summary: ExperimentSummary) -> CrosscoderRun:
    directory = checkpoint_of(paths, name)
    meta = read_json(directory / "config.json", "crosscoder config")
    dict_size = int(meta["config"]["dict_size"])
    ranking = read_ranking(ranking_file(paths.experiment, name), directory, dict_size)
    rows = [LatentStats(r.latent, rank, r.group, r.rl_dominant, r.delta, r.rl_norm_share, r.strict_d, r.strict_auroc,
                        r.paper_d, r.paper_auroc, r.nu_eps, r.nu_r, r.firing) for rank, r in enumerate(ranking.latents)]
    models = tuple(meta.get("info", {}).get("models") or ())
    if len(models) != 2:
        raise UserError(f"crosscoder {directory} records no model pair; retrain it with `tooldiff train`")
    planted = summary.positive_control.get(name)
    return CrosscoderRun(name, directory, dict_size, meta.get("info", {}).get("layer"), models,
                         _train_metrics(summary.crosscoders.get(name) or {}), rows, ranking.best,
                         ranking.least_related, _planted(planted) if planted else None)


def _hist(raw: Optional[dict]) -> Optional[Histogram]:
    hist = (raw or {}).get("hist")
    return Histogram(hist["counts"], hist["edges"]) if hist else None


def _train_metrics(m: dict) -> TrainMetrics:
    return TrainMetrics(fve=m.get("fve") or {}, l0=m.get("l0"), dead_frac=m.get("dead_frac"),
                        partition=m.get("partition") or {}, delta_hist=_hist(m.get("delta")),
                        shared_cosine_hist=_hist(m.get("shared_cosine")), history=m.get("history") or [],
                        step=m.get("step"))


def _planted(p: SummaryPlanted) -> PlantedCheck:
    return PlantedCheck(p.best_latent, p.best_abs_cosine, p.best_group, p.top_ranked_latent, p.top_ranked_abs_cosine,
                        p.captured_share)


def read_calibration_prompts(experiment: Path) -> list[Prompt]:
    from tooldiff.errors import iter_jsonl

    return [Prompt(r["id"], r.get("kind", "?"), "calibration", r)
            for _, r in iter_jsonl(experiment / CALIBRATION_FILE, "calibration prompts")]


def read_test_prompts(study: Study, notes: list[str]) -> list[Prompt]:
    """The experiment's test prompts: from `--organism` (an organism directory, or a study's test
    JSONL), else from the organism beside the RL model, else from a study's RUN/data/test.jsonl."""
    given = study.paths.organism
    try:
        records = {r["id"]: r for r in _test_records(Path(given) if given else None, study)}
    except UserError as e:
        if given:
            raise
        notes.append(f"test prompts not shown: {e} (pass --organism)")
        return []
    return [Prompt(i, records[i].get("kind", "?"), "test", records[i]) for i in study.test_ids if i in records]


def _test_records(given: Optional[Path], study: Study) -> list[dict]:
    from tooldiff.errors import iter_jsonl
    from tooldiff.organism import INFO_FILE, load_organism

    study_split = Path(study.paths.experiment).resolve().parent / "data" / "test.jsonl"  # `tooldiff run`'s layout
    if given is not None and given.is_file():
        return [r for _, r in iter_jsonl(given, "test prompts")]
    if given is None and not (study.rl_path.parent / INFO_FILE).is_file() and study_split.is_file():
        return [r for _, r in iter_jsonl(study_split, "test prompts")]
    return load_organism(given or study.rl_path.parent, models=False).records("test")


def calibration_activations(experiment: Path):
    """The decision-position activations the ranking was computed on (features.CalibrationActs)."""
    from tooldiff.experiment.data import calibration_acts

    acts = experiment / CALIBRATION_ACTS
    if not (acts / "manifest.json").is_file():
        raise UserError(f"{acts} is missing: the experiment's calibration harvest is gone")
    return calibration_acts(acts, experiment / CALIBRATION_FILE)


def read_findings(paths: RunPaths, notes: list[str]) -> Findings:
    if paths.results is not None:
        results, source = read_results(Path(paths.results)), str(paths.results)
    else:
        from tooldiff.report.results import build_results

        results = build_results(read_summary(paths.experiment))
        source = f"computed from {paths.experiment / SUMMARY_FILE} (no results.json found)"
    f = results.findings
    single = f.single_latent
    return Findings(single.holds, single.n_tried, [_claim(w) for w in single.winners],
                    _claim(single.largest) if single.largest else None, [r.to_dict() for r in f.dfc_vs_dom],
                    [r.to_dict() for r in f.recon_artifact],
                    results.positive_control.to_dict() if results.positive_control else None, source)


def _claim(raw) -> ClaimRow:
    return ClaimRow(raw.crosscoder, raw.intervention, tuple(raw.features), raw.alpha, raw.diff, raw.ci95[0],
                    raw.ci95[1])
