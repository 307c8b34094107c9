"""One pipeline for every model pair: harvest → crosscoder sweep → features + experiment → report.

`tooldiff demo` (the embedded organism and its positive control) and `tooldiff run` (a real pair
from a study TOML) both call `run_pipeline` with a `tooldiff.pair.ModelPair`; they differ only in
how they make the pair and what they add to results.json. Every stage resumes, so rerunning after
an interruption continues where it stopped.

Run layout under `out`: train_prompts.jsonl (when the train split spans several files), acts/,
crosscoders/<name>/, experiment/ and, with `report`, results.json, report.md and its plots.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from tooldiff.experiment.config import ExperimentConfig
from tooldiff.features.ranking import RUN_CROSSCODERS, RUN_EXPERIMENT
from tooldiff.pair import ModelPair

Timer = Callable[[str], AbstractContextManager]  # stage name -> a context that times it


@dataclass(frozen=True)
class HarvestOptions:
    """How the training activations are harvested (tooldiff.activations.harvest_pair's settings)."""

    positions: str = "decision"
    batch_size: int = 32
    shard_rows: int = 65536
    dtype: str = "float32"  # of the stored activations
    model_dtype: str = "float32"


def _untimed(name: str) -> AbstractContextManager:
    from contextlib import nullcontext

    return nullcontext()


def run_pipeline(pair: ModelPair, sweep, experiment_config: ExperimentConfig, out: Path,
                 harvest: HarvestOptions = HarvestOptions(), timer: Timer = _untimed,
                 report: bool = True):
    """Harvest `pair` on its train split, train `sweep` (a TOML path or SweepConfig), run the
    experiment with `experiment_config` and, with `report`, write out/results.json and report.md.
    Returns the results (report.Results, with `report`) or the experiment summary
    (experiment.summary.ExperimentSummary)."""
    from tooldiff.activations import harvest_pair
    from tooldiff.crosscoder import train_sweep
    from tooldiff.experiment import run_experiment

    device = experiment_config.device
    with timer("harvest"):
        data = pair.split_file("train", out / "train_prompts.jsonl")
        harvest_pair(base=str(pair.base), rl=str(pair.rl), layer=pair.layer, data=data, out=out / "acts",
                     positions=harvest.positions, batch_size=harvest.batch_size, shard_rows=harvest.shard_rows,
                     dtype=harvest.dtype, device=device, model_dtype=harvest.model_dtype)
    with timer("train"):
        train_sweep(acts=out / "acts", config=sweep, out=out / RUN_CROSSCODERS, device=device)
    with timer("experiment"):
        summary = run_experiment(pair, out / RUN_CROSSCODERS, out / RUN_EXPERIMENT, experiment_config)
    if not report:
        return summary
    return write_pipeline_report(summary, out, pair, timer)


def write_pipeline_report(summary, out: Path, pair: Optional[ModelPair], timer: Timer = _untimed,
                          positive=None, machine: Optional[str] = None):
    """The report stage: results.json, report.md and the plots in `out` (report.Results); `summary`
    is the experiment's, `positive` the positive control's verdict if one ran."""
    from tooldiff.report import write_report

    with timer("report"):
        return write_report(summary, out, organism_info=pair.info if pair else None, positive=positive,
                            machine=machine)
