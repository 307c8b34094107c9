"""The full matrix: every organism seed through the same study, its positive control and a null
pair, then the paper's claims judged across the seeds — one command that resumes.

One twin is one draw: the RL outcome varies by seed as much as by setting (docs/notes), and
crosscoder seeds are not organism seeds. So a verdict must say at how many organism seeds it holds
(report/claims.py: "robust" only at all of them), and each seed needs its own instrument check
(the rank1 positive control, built on that seed's base) and its own false-positive check (base vs
base: the same model twice, where nothing may be found).

Per seed s, under OUT/seed-<s>/ (organism directories and rank1/ as the demo lays them out):
- organism/ (the shipped pair at seed 0 unless --rebuild, else built from the recipe), and
  organism-rank1/ (its positive-control twin: same data, tokenizer and base);
- pairs/real/ and pairs/base-vs-base/: the pipeline on each (nullpairs.run_null_pairs), with
  pairs/null_pairs.md beside them; pairs/real/results.json carries the positive control's verdict;
- rank1/: the positive control's study (demo.run_positive_control);
- emergence/ and headroom/, where the organism keeps its RL checkpoints (a seed built here; the
  shipped pair leaves them out): the final twin's top latent followed along RL, with crosscoders
  of their own at the first, middle, last and kept steps (`tooldiff emergence --train-at auto`),
  then the checkpoint nearest 25 % calibration strict steered with the paper's grid, and the
  final twin's top latent added into it (`tooldiff headroom --transfer-from`).
Then OUT/claims.md (report/claims_table.py) and OUT/matrix.json: every invocation's seeds,
settings and stage wall seconds, and their totals per seed and stage (benchmarks/matrix_time.py).
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


@dataclass(frozen=True)
class MatrixConfig:
    """What `tooldiff matrix` runs (every field is also a command-line option)."""

    seeds: tuple[int, ...] = (0, 1, 2)
    preset: str = "default"
    n_per_kind: int = 70  # test prompts per request kind: n = 210 per condition
    sweep: str | None = None  # the study's crosscoders (default: the demo's sweep)
    nulls: bool = True  # base vs base beside the real pair
    positive_control: bool = True
    rebuild: bool = False  # build seed 0 from the recipe too, instead of installing the shipped pair
    rl_course: bool = True  # emergence and the headroom twin, at seeds whose organism keeps its RL checkpoints
    threads: int = 1  # torch threads for the organism builds
    device: str = "cpu"
    experiment: dict = field(default_factory=dict)  # other ExperimentConfig fields (tests use a small grid)

    def __post_init__(self):
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise UserError(f"--seed must name distinct organism seeds >= 0, got {list(self.seeds)}")
        if self.n_per_kind < 1:
            raise UserError(f"--n-per-kind must be at least 1, got {self.n_per_kind}")


@dataclass
class SeedRun:
    """Where one seed's artifacts are, and how long each of its stages took (wall seconds)."""

    seed: int
    results: str
    null: str | None
    seconds: dict[str, float] = field(default_factory=dict)
    headroom: tuple[str, str] | None = None  # (steered, transfer) experiment directories of its headroom twin


def seed_dir(out: Path, seed: int) -> Path:
    return out / f"seed-{seed}"


def run_seed(config: MatrixConfig, seed: int, out: Path) -> SeedRun:
    """Organism, real and null pipelines, positive control, and the real pair's results.json."""
    from tooldiff import configs
    from tooldiff.demo import DEMO_SWEEP, POSITIVE_SWEEP, Clock, ControlJob, organism_pair, organisms, run_positive_control
    from tooldiff.experiment import load_experiment_config
    from tooldiff.experiment.summary import read_summary
    from tooldiff.features.ranking import MIN_AUROC, RUN_EXPERIMENT
    from tooldiff.nullpairs import BASE_VS_BASE, REAL, null_pairs, run_null_pairs
    from tooldiff.pipeline import write_pipeline_report
    from tooldiff.report import write_results
    from tooldiff.report.markdown import machine_description
    from tooldiff.threads import one_thread

    root, clock = seed_dir(out, seed), Clock()
    users = configs.resolve(config.sweep) if config.sweep else None  # then the control trains it too (demo.py)
    exp_cfg = load_experiment_config({**config.experiment, "n_per_kind": config.n_per_kind, "seed": seed,
                                      "device": config.device})
    with clock.stage(f"seed {seed}: organism"):
        source = organisms(root, config.preset, seed, config.threads, config.rebuild, config.positive_control)
    pair = organism_pair(root / "organism")
    pairs = null_pairs(pair) if config.nulls else {REAL: pair}
    with one_thread():
        with clock.stage(f"seed {seed}: pipelines ({', '.join(pairs)})"):
            once(root, "pipelines", config, lambda: run_null_pairs(pairs, users or DEMO_SWEEP, exp_cfg, root / "pairs",
                                                                    MIN_AUROC))
        positive = None
        if config.positive_control:
            job = ControlJob(root, config.preset, seed, exp_cfg.model_dump(), users or POSITIVE_SWEEP)
            positive, control_clock = run_positive_control(job)
            clock.merge(control_clock)
        if config.rl_course:
            rl_course(root, pair, users or DEMO_SWEEP, exp_cfg, clock, config)
    real, machine = root / "pairs" / REAL, machine_description()
    results = write_pipeline_report(read_summary(real / RUN_EXPERIMENT), real, pair, positive=positive, machine=machine)
    write_results(results.with_facts(organism_source=source, machine=machine,
                                     finished_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")), real)
    return SeedRun(seed, str(real / "results.json"),
                   str(root / "pairs" / BASE_VS_BASE / "results.json") if config.nulls else None, clock.wall,
                   headroom_dirs(root))


def headroom_dirs(root: Path) -> tuple[str, str] | None:
    """(steered, transfer) experiment directories of the seed's headroom twin, once both exist."""
    from tooldiff.experiment.summary import SUMMARY_FILE
    from tooldiff.headroom import claim_dirs

    dirs = claim_dirs(root / "headroom")
    return tuple(map(str, dirs)) if all((d / SUMMARY_FILE).is_file() for d in dirs) else None


def once(root: Path, stage: str, config: MatrixConfig, run) -> None:
    """`run()` unless root/.matrix/<stage>.json says it finished with these settings: every stage
    resumes on its own, but opening a finished one again still costs seconds per experiment
    (models, rankings, the loss recovered), and a finished matrix should only be re-judged."""
    from tooldiff.organism.store import write_json_atomic

    marker, identity = root / ".matrix" / f"{stage}.json", _identity(config)
    if marker.is_file() and json.loads(marker.read_text()) == identity:
        return
    run()
    marker.parent.mkdir(exist_ok=True)
    write_json_atomic(marker, identity)


def _identity(config: MatrixConfig) -> dict:
    """The settings that change what a seed's stages compute (the sweep's text, when it is a file)."""
    keep = {k: v for k, v in asdict(config).items() if k not in ("seeds", "threads", "device", "rl_course")}
    sweep = Path(config.sweep) if config.sweep else None
    return keep | ({"sweep_text": sweep.read_text()} if sweep and sweep.is_file() else {})


def rl_course(root: Path, pair, sweep, exp_cfg, clock, config: MatrixConfig) -> None:
    """Emergence along the seed's RL run, then its headroom twin (module docstring); skipped where
    the organism keeps no RL checkpoints. A finished emergence table is not computed again."""
    from tooldiff.experiment.emergence import JSON_FILE, EmergenceConfig, run_emergence
    from tooldiff.features.ranking import RUN_CROSSCODERS, RUN_EXPERIMENT
    from tooldiff.headroom import HeadroomJob, run_headroom
    from tooldiff.nullpairs import REAL
    from tooldiff.organism.checkpoints import CHECKPOINTS_DIR

    organism, real = root / "organism", root / "pairs" / REAL
    if not any((organism / "rl" / CHECKPOINTS_DIR).glob("step-*.safetensors")):
        return
    emergence = root / "emergence"
    with clock.stage(f"seed {exp_cfg.seed}: emergence"):
        if not (emergence / JSON_FILE).is_file():
            run_emergence(organism, real / RUN_EXPERIMENT, emergence, EmergenceConfig(
                seed=exp_cfg.seed, device=exp_cfg.device, train_at="auto"), real / RUN_CROSSCODERS)
    with clock.stage(f"seed {exp_cfg.seed}: headroom"):
        job = HeadroomJob(pair, organism, emergence / JSON_FILE, sweep, exp_cfg, root / "headroom",
                          transfer_from=real / RUN_CROSSCODERS)
        once(root, "headroom", config, lambda: run_headroom(job))


def run_matrix(config: MatrixConfig, out: Path) -> Path:
    """Every seed (resuming what is done), then OUT/claims.md and OUT/matrix.json; returns claims.md."""
    from tooldiff.organism.store import write_json_atomic
    from tooldiff.report.claims_table import write_claims

    out.mkdir(parents=True, exist_ok=True)
    history = _history(out / MATRIX_FILE)
    started, runs = time.perf_counter(), []
    for seed in config.seeds:
        runs.append(run_seed(config, seed, out))
    path = write_claims([Path(r.results) for r in runs], [Path(r.null) for r in runs if r.null], out / CLAIMS_FILE,
                        [tuple(map(Path, r.headroom)) for r in runs if r.headroom])
    history.append({"config": asdict(config), "seeds": [asdict(r) for r in runs],
                    "wall_s": round(time.perf_counter() - started, 1)})
    write_json_atomic(out / MATRIX_FILE, {"runs": history, **_totals(history)})
    return path


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
