"""The full matrix: every organism seed through the same study, its positive control and a null
pair, then the paper's claims judged across the seeds — one command that resumes.

One twin is one draw: the RL outcome varies by seed as much as by setting (docs/notes), and
crosscoder seeds are not organism seeds. So a verdict must say at how many organism seeds it holds
(report/claims.py: "robust" only at all of them), and each seed needs its own instrument check
(the rank1 positive control, built on that seed's base) and its own false-positive check (base vs
base: the same model twice, where nothing may be found).

Per seed s, under OUT/seed-<s>/ (organism directories and rank1/ as the demo lays them out):
- organism/ (the shipped pair at seed 0 unless --rebuild, else built from the recipe),
  organism-rank1/ (its positive-control twin: same data, tokenizer and base) and organism-sham/
  (its sham twin: the same RL from the same base, a reward that ignores tool use);
- pairs/real/, pairs/base-vs-base/ and pairs/sham/: the pipeline on each (nullpairs.run_pair; a
  null pair runs the top latent's cells alone, nullpairs.pair_config), with pairs/null_pairs.md
  beside them (and pairs/sham-check.json: is the sham a fair null?);
  pairs/real/results.json carries the positive control's verdict;
- rank1/: the positive control's study (demo.run_positive_control);
- emergence/ and headroom/, where the organism keeps its RL checkpoints (a seed built here; the
  shipped pair leaves them out): the final twin's top latent followed along RL, with crosscoders
  of their own at the first, middle, last and kept steps (`tooldiff emergence --train-at auto`),
  then the checkpoint nearest 25 % calibration strict steered with the paper's grid, and the
  final twin's top latent added into it (`tooldiff headroom --transfer-from`);
- logs/: each job's terminal output.
First every seed's organisms are built, one after another on --threads (a build must have its
cores to itself: float sums in another order make another twin). Then the seeds' jobs run
side by side, --workers at a time, each on one thread (jobs.py): a pipeline per pair, the sham's
check, the positive control, and emergence then headroom once the real pair's pipeline is done.
Then OUT/claims.md (report/claims_table.py) and OUT/matrix.json: every invocation's seeds,
settings and stage wall seconds, and their totals per seed and stage (benchmarks/matrix_time.py;
with jobs side by side the stages add up to more than the wall time).
Every stage resumes from what is on disk, so an interrupted matrix goes on where it stopped; a
finished one is re-judged in seconds.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tooldiff.errors import UserError

CLAIMS_FILE, MATRIX_FILE = "claims.md", "matrix.json"
SHAM_DIR, SHAM_CHECK_FILE = "organism-sham", "sham-check.json"
# Each kind of job's expected wall seconds on a 2-core box (measured: docs/notes/2026-12-07-matrix-hour.md):
# the job graph starts the longest path first (jobs.Job.cost), so a headroom run does not end the
# matrix alone. Only the start order reads them, so only their ratios matter.
JOB_COSTS = {"pipeline": 340.0, "sham check": 10.0, "positive control": 250.0, "emergence": 220.0,
             "headroom": 470.0}


@dataclass(frozen=True)
class MatrixConfig:
    """What `tooldiff matrix` runs (every field is also a command-line option)."""

    seeds: tuple[int, ...] = (0, 1, 2)
    preset: str = "default"
    n_per_kind: int = 70  # test prompts per request kind: n = 210 per condition
    sweep: str | None = None  # the study's crosscoders (default: the demo's sweep)
    nulls: bool = True  # base vs base beside the real pair
    sham: bool = True  # and the sham twin (built from the seed's base), with its fairness check
    positive_control: bool = True
    rebuild: bool = False  # build seed 0 from the recipe too, instead of installing the shipped pair
    rl_course: bool = True  # emergence and the headroom twin, at seeds whose organism keeps its RL checkpoints
    threads: int = 1  # torch threads for the organism builds (they run alone, before the jobs)
    workers: int = 1  # jobs side by side after the builds, one torch thread each (jobs.py)
    device: str = "cpu"
    experiment: dict = field(default_factory=dict)  # other ExperimentConfig fields (tests use a small grid)

    def __post_init__(self):
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise UserError(f"--seed must name distinct organism seeds >= 0, got {list(self.seeds)}")
        if self.n_per_kind < 1:
            raise UserError(f"--n-per-kind must be at least 1, got {self.n_per_kind}")
        if self.workers < 1:
            raise UserError(f"--workers must be at least 1, got {self.workers}")


@dataclass
class SeedRun:
    """Where one seed's artifacts are, and how long each of its stages took (wall seconds)."""

    seed: int
    results: str
    nulls: list[str]
    seconds: dict[str, float] = field(default_factory=dict)
    headroom: tuple[str, str] | None = None  # (steered, transfer) experiment directories of its headroom twin


@dataclass(frozen=True)
class SeedPlan:
    """One seed's settings as its jobs need them (everything pickles: jobs cross processes)."""

    seed: int
    root: Path
    pairs: dict  # pair name -> ModelPair: the real pair and its nulls
    sweep: Path  # the study's sweep
    control_sweep: Path  # the positive control's
    exp_cfg: object  # ExperimentConfig
    source: str  # where the organism came from (shipped, built)
    identity: dict  # the settings a finished stage was made with (_identity)


def seed_dir(out: Path, seed: int) -> Path:
    return out / f"seed-{seed}"


def prepare_seed(config: MatrixConfig, seed: int, out: Path, clock) -> SeedPlan:
    """The seed's organisms, built one after another on `threads` (they are the recipe's: a build
    must not share its cores), and the pairs its jobs study."""
    from tooldiff import configs
    from tooldiff.demo import DEMO_SWEEP, POSITIVE_SWEEP, organism_pair, organisms
    from tooldiff.experiment import load_experiment_config
    from tooldiff.nullpairs import REAL, null_pairs

    root = seed_dir(out, seed)
    users = configs.resolve(config.sweep) if config.sweep else None  # then the control trains it too (demo.py)
    exp_cfg = load_experiment_config({**config.experiment, "n_per_kind": config.n_per_kind, "seed": seed,
                                      "device": config.device})
    with clock.stage(f"seed {seed}: organism"):
        source = organisms(root, config.preset, seed, config.threads, config.rebuild, config.positive_control)
    pair = organism_pair(root / "organism")
    sham = None
    if config.sham and config.nulls:
        with clock.stage(f"seed {seed}: sham twin"):
            sham = organism_pair(build_sham(root, config, seed))
    pairs = null_pairs(pair, sham) if config.nulls else {REAL: pair}
    return SeedPlan(seed, root, pairs, users or DEMO_SWEEP, users or POSITIVE_SWEEP, exp_cfg, source,
                    _identity(config))


def build_sham(root: Path, config: MatrixConfig, seed: int) -> Path:
    """The seed's sham twin: the same RL from its base, a reward that ignores tool use."""
    from tooldiff.organism import build_organism

    return build_organism(root / SHAM_DIR, preset=config.preset, seed=seed, variant="sham",
                          shared_from=root / "organism", threads=config.threads)


def seed_jobs(config: MatrixConfig, plan: SeedPlan) -> list:
    """The seed's jobs: a pipeline per pair, the sham twin's check, the positive control, and its
    RL course (emergence after the real pair's pipeline, headroom after emergence)."""
    from tooldiff.demo import ControlJob
    from tooldiff.jobs import Job
    from tooldiff.nullpairs import REAL, SHAM
    from tooldiff.organism.checkpoints import CHECKPOINTS_DIR

    s, logs = plan.seed, plan.root / "logs"
    jobs = [Job(f"seed {s}: pipeline {name}", pipeline_job, (plan, name), log=logs / f"pipeline-{name}.txt",
                cost=JOB_COSTS["pipeline"]) for name in plan.pairs]
    if SHAM in plan.pairs:
        jobs.append(Job(f"seed {s}: sham check", sham_check_job, (plan,), log=logs / "sham-check.txt",
                        cost=JOB_COSTS["sham check"]))
    if config.positive_control:
        control = ControlJob(plan.root, config.preset, s, plan.exp_cfg.model_dump(), plan.control_sweep)
        jobs.append(Job(f"seed {s}: positive control", positive_job, (control,), log=plan.root / "rank1" / "log.txt",
                        cost=JOB_COSTS["positive control"]))
    checkpoints = plan.root / "organism" / "rl" / CHECKPOINTS_DIR
    if config.rl_course and any(checkpoints.glob("step-*.safetensors")):
        jobs += [Job(f"seed {s}: emergence", emergence_job, (plan,), after=(f"seed {s}: pipeline {REAL}",),
                     log=logs / "emergence.txt", cost=JOB_COSTS["emergence"]),
                 Job(f"seed {s}: headroom", headroom_job, (plan,), after=(f"seed {s}: emergence",),
                     log=logs / "headroom.txt", cost=JOB_COSTS["headroom"])]
    return jobs


def pipeline_job(plan: SeedPlan, name: str):
    """The pipeline on one pair (nullpairs.run_pair), or what a finished one found."""
    from tooldiff.features.ranking import MIN_AUROC
    from tooldiff.nullpairs import outcome, pair_config, run_pair
    from tooldiff.report.results import RESULTS_FILE, read_results

    pairs, stage = plan.root / "pairs", f"pipeline-{name}"
    identity = plan.identity | {"grid": pair_config(name, plan.exp_cfg).grid}
    if finished(plan.root, stage, identity):
        return outcome(name, pairs / name, read_results(pairs / name / RESULTS_FILE), MIN_AUROC)
    found = run_pair(name, plan.pairs[name], plan.sweep, plan.exp_cfg, pairs, MIN_AUROC)
    mark(plan.root, stage, identity)
    return found


def sham_check_job(plan: SeedPlan) -> dict:
    """`tooldiff null-check` of the seed's sham twin against its real twin, kept in pairs/."""
    from tooldiff.experiment.nulls import null_check
    from tooldiff.organism.store import write_json_atomic

    path = plan.root / "pairs" / SHAM_CHECK_FILE
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, null_check(plan.root / "organism", plan.root / SHAM_DIR, seed=plan.seed))
    return json.loads(path.read_text())


def positive_job(control) -> dict:
    """The rank1 positive control's study (demo.run_positive_control); returns its summary."""
    from tooldiff.demo import run_positive_control

    return run_positive_control(control)[0]


def emergence_job(plan: SeedPlan) -> None:
    """The final twin's top latent along the seed's RL checkpoints, with crosscoders of their own."""
    from tooldiff.experiment.emergence import JSON_FILE, EmergenceConfig, run_emergence
    from tooldiff.features.ranking import RUN_CROSSCODERS, RUN_EXPERIMENT
    from tooldiff.nullpairs import REAL

    real, emergence = plan.root / "pairs" / REAL, plan.root / "emergence"
    if not (emergence / JSON_FILE).is_file():
        run_emergence(plan.root / "organism", real / RUN_EXPERIMENT, emergence, EmergenceConfig(
            seed=plan.seed, device=plan.exp_cfg.device, train_at="auto"), real / RUN_CROSSCODERS)


def headroom_job(plan: SeedPlan) -> None:
    """The checkpoint nearest 25 % calibration strict, steered, and the final twin's latent added in."""
    from tooldiff.experiment.emergence import JSON_FILE
    from tooldiff.features.ranking import RUN_CROSSCODERS
    from tooldiff.headroom import GRID, HeadroomJob, run_headroom
    from tooldiff.nullpairs import REAL

    identity = plan.identity | {"grid": GRID}
    if finished(plan.root, "headroom", identity):
        return
    real = plan.root / "pairs" / REAL
    run_headroom(HeadroomJob(plan.pairs[REAL], plan.root / "organism", plan.root / "emergence" / JSON_FILE,
                             plan.sweep, plan.exp_cfg, plan.root / "headroom", transfer_from=real / RUN_CROSSCODERS))
    mark(plan.root, "headroom", identity)


def finish_seed(plan: SeedPlan, done: dict, seconds: dict[str, float]) -> SeedRun:
    """The null pairs' table and the real pair's results.json (with the positive control's verdict)."""
    from tooldiff.experiment.summary import read_summary
    from tooldiff.features.ranking import MIN_AUROC, RUN_EXPERIMENT
    from tooldiff.nullpairs import REAL, write_outputs
    from tooldiff.pipeline import write_pipeline_report
    from tooldiff.report import write_results
    from tooldiff.report.markdown import machine_description

    s, pairs = plan.seed, plan.root / "pairs"
    outcomes = [done[f"seed {s}: pipeline {name}"].value for name in plan.pairs]
    check = done.get(f"seed {s}: sham check")
    write_outputs(outcomes, pairs, plan.exp_cfg, MIN_AUROC, check.value if check else None)
    control = done.get(f"seed {s}: positive control")
    real, machine = pairs / REAL, machine_description()
    results = write_pipeline_report(read_summary(real / RUN_EXPERIMENT), real, plan.pairs[REAL],
                                    positive=control.value if control else None, machine=machine)
    write_results(results.with_facts(organism_source=plan.source, machine=machine,
                                     finished_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")), real)
    return SeedRun(s, str(real / "results.json"), [str(pairs / n / "results.json") for n in plan.pairs if n != REAL],
                   seconds, headroom_dirs(plan.root))


def headroom_dirs(root: Path) -> tuple[str, str] | None:
    """(steered, transfer) experiment directories of the seed's headroom twin, once both exist."""
    from tooldiff.experiment.summary import SUMMARY_FILE
    from tooldiff.headroom import claim_dirs

    dirs = claim_dirs(root / "headroom")
    return tuple(map(str, dirs)) if all((d / SUMMARY_FILE).is_file() for d in dirs) else None


def finished(root: Path, stage: str, identity: dict) -> bool:
    """Whether root/.matrix/<stage>.json says the stage finished with these settings: every stage
    resumes on its own, but opening a finished one again still costs seconds per experiment
    (models, rankings, the loss recovered), and a finished matrix should only be re-judged."""
    marker = root / ".matrix" / f"{stage}.json"
    return marker.is_file() and json.loads(marker.read_text()) == identity


def mark(root: Path, stage: str, identity: dict) -> None:
    from tooldiff.organism.store import write_json_atomic

    (root / ".matrix").mkdir(exist_ok=True)
    write_json_atomic(root / ".matrix" / f"{stage}.json", identity)


def _identity(config: MatrixConfig) -> dict:
    """The settings that change what a seed's stages compute (the sweep's text, when it is a file)."""
    keep = {k: v for k, v in asdict(config).items()
            if k not in ("seeds", "threads", "workers", "device", "rl_course", "sham", "nulls", "positive_control")}
    sweep = Path(config.sweep) if config.sweep else None
    return keep | ({"sweep_text": sweep.read_text()} if sweep and sweep.is_file() else {})


def run_matrix(config: MatrixConfig, out: Path) -> Path:
    """Every seed's organisms, then every seed's jobs side by side (resuming what is done), then
    OUT/claims.md and OUT/matrix.json; returns claims.md."""
    from tooldiff.demo import Clock
    from tooldiff.jobs import run_jobs
    from tooldiff.organism.store import write_json_atomic
    from tooldiff.report.claims_table import write_claims
    from tooldiff.threads import one_thread

    out.mkdir(parents=True, exist_ok=True)
    history = _history(out / MATRIX_FILE)
    started, clock = time.perf_counter(), Clock()
    plans = [prepare_seed(config, seed, out, clock) for seed in config.seeds]
    with one_thread():  # workers=1 runs the jobs here, on one thread as a worker would
        done = run_jobs([job for plan in plans for job in seed_jobs(config, plan)], config.workers)
    runs = []
    for plan in plans:
        seconds = {n: t for n, t in clock.wall.items() if n.startswith(f"seed {plan.seed}: ")}
        seconds |= {n: d.wall_s for n, d in done.items() if n.startswith(f"seed {plan.seed}: ")}
        runs.append(finish_seed(plan, done, seconds))
    path = write_claims([Path(r.results) for r in runs], [Path(n) for r in runs for n in r.nulls], out / CLAIMS_FILE,
                        [tuple(map(Path, r.headroom)) for r in runs if r.headroom])
    history.append({"config": asdict(config), "seeds": [asdict(r) for r in runs],
                    "wall_s": round(time.perf_counter() - started, 1)})
    write_json_atomic(out / MATRIX_FILE, {"runs": history, **_totals(history)})
    return path


def publish(out: Path, dest: Path) -> Path:
    """Copy a finished matrix's quotable files to `dest` (replaced whole), as docs/results/matrix/
    holds them: claims.md, matrix.json and per seed the real pair's results.json, report.md and
    plots, each null pair's results.json (as <pair>.results.json), null_pairs.{json,md}, the sham
    check, emergence and headroom tables, and organism.md (the organism's own numbers)."""
    import shutil

    from tooldiff.nullpairs import JSON_FILE, REAL, TABLE_FILE
    from tooldiff.report.readme import organism_markdown

    if not (out / CLAIMS_FILE).is_file():
        raise UserError(f"{out} holds no finished matrix ({CLAIMS_FILE} is missing); run `tooldiff matrix` first")
    staging = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in (CLAIMS_FILE, MATRIX_FILE):
        shutil.copy2(out / name, staging / name)
    for root in sorted(out.glob("seed-*")):
        pairs, target = root / "pairs", staging / root.name
        target.mkdir()
        wanted = [pairs / REAL / n for n in ("results.json", "report.md", "delta_hist.png", "dose_response.png")]
        wanted += [pairs / n for n in (JSON_FILE, TABLE_FILE, SHAM_CHECK_FILE)]
        wanted += [root / "emergence" / f"emergence.{ext}" for ext in ("json", "md", "png")]
        wanted += [root / "headroom" / "headroom.md"]
        for path in filter(Path.is_file, wanted):
            shutil.copy2(path, target / path.name)
        for null in sorted(p for p in pairs.iterdir() if p.is_dir() and p.name != REAL):
            if (null / "results.json").is_file():
                shutil.copy2(null / "results.json", target / f"{null.name}.results.json")
        (target / "organism.md").write_text(organism_markdown(root / "organism"))
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)
    return dest


def _history(path: Path) -> list[dict]:
    """The invocations an earlier matrix.json records, oldest first (a resumed stage's time is
    only what its own invocation spent, so the totals add them up)."""
    if not path.is_file():
        return []
    try:
        old = json.loads(path.read_text())
    except ValueError:
        raise UserError(f"{path} is not JSON; move it away to start its timing history afresh") from None
    return old.get("runs", [old] if "seeds" in old else [])


def _totals(history: list[dict]) -> dict:
    """Wall seconds over every invocation, in all and per seed and stage."""
    stage_s: dict[str, dict[str, float]] = {}
    for run in history:
        for seed in run["seeds"]:
            stages = stage_s.setdefault(str(seed["seed"]), {})
            for name, seconds in seed["seconds"].items():
                stages[name] = round(stages.get(name, 0.0) + seconds, 1)
    return {"wall_s": round(sum(run["wall_s"] for run in history), 1), "stage_s": stage_s}
