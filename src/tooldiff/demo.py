"""`tooldiff demo`: the whole study on the embedded organism, end to end, with stage timings.

organism (the shipped pair, or built) → harvest → crosscoder sweep → features → experiment →
report → dashboard, with the same instrument on the rank1 positive-control organism, whose
answer is known.

The two studies are independent once the full organism exists, so the positive control (its RL
stage and its study) runs in a child process beside the full study: two single-threaded
processes keep both cores busy. One thread each, because these models and crosscoders are tiny:
a second OpenMP thread gains little, and when the other core is busy its spin-waiting made
crosscoder training ~8x slower (benchmarks/demo_time.py reports CPU beside wall time).
"""

from __future__ import annotations

import multiprocessing
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import torch

from tooldiff import configs
from tooldiff.errors import UserError
from tooldiff.experiment.positive import positive_summary
from tooldiff.progress import console, say, stage
from tooldiff.threads import one_thread

DEMO_SWEEP, POSITIVE_SWEEP = configs.shipped("sweep-demo"), configs.shipped("sweep-positive")


@dataclass
class Clock:
    """Wall and CPU seconds per stage: on a shared machine the wall time alone cannot tell a slow
    stage from a starved one."""

    wall: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.process_time()
        with stage(name, self.wall):
            yield
        self.cpu[name] = round(time.process_time() - start, 1)

    def merge(self, other: "Clock") -> None:
        self.wall.update(other.wall)
        self.cpu.update(other.cpu)


def study(pair, out: Path, sweep: Path, exp_cfg, clock: Clock, tag: str,
          harvest_positions: str = "decision"):
    """harvest → train → experiment for one organism's pair; returns the experiment summary."""
    from tooldiff.pipeline import HarvestOptions, run_pipeline

    return run_pipeline(pair, sweep, exp_cfg, out, harvest=HarvestOptions(positions=harvest_positions),
                        timer=lambda name: clock.stage(f"{tag}: {name}"), report=False)


def organism_pair(directory: Path):
    """The organism in `directory` as a model pair (tooldiff.pair.ModelPair)."""
    from tooldiff.organism import load_organism

    return load_organism(directory, models=False).as_pair()


def organisms(out: Path, preset: str, seed: int, threads: int, rebuild: bool, positive_control: bool) -> str:
    """Put the full organism in out/organism (and the rank1 one in out/organism-rank1): the shipped
    pair where it exists (default preset, seed 0) unless `rebuild`; else built from the recipe (the
    rank1 one then by the positive control's process). Returns where they came from."""
    from tooldiff.organism import build_organism
    from tooldiff.organism.ship import install_shipped, is_shipped

    if rebuild or not is_shipped(preset, seed):
        build_organism(out / "organism", preset=preset, seed=seed, variant="full", threads=threads)
        return "built from the recipe"
    install_shipped(out / "organism", "full")
    if positive_control:
        install_shipped(out / "organism-rank1", "rank1")
    return "shipped"


def run_demo(out: Path, preset: str = "default", seed: int = 0, sweep: str | Path | None = None,
             n_per_kind: int = 60, positive_control: bool = True, device: str = "cpu", threads: int = 1,
             rebuild: bool = False):
    from tooldiff.experiment import load_experiment_config
    from tooldiff.pipeline import write_pipeline_report
    from tooldiff.report import write_results
    from tooldiff.report.markdown import machine_description

    # A user's sweep is the instrument under test, so the positive control trains it too; the
    # demo's own control trains only the demo sweep's DFC kinds (sweep-positive.toml says why).
    control_sweep = configs.resolve(sweep) if sweep is not None else POSITIVE_SWEEP
    sweep = configs.resolve(sweep) if sweep is not None else DEMO_SWEEP
    torch.manual_seed(seed)
    started = time.perf_counter()
    clock = Clock()
    exp_cfg = load_experiment_config({"n_per_kind": n_per_kind, "seed": seed, "device": device})
    with clock.stage("organism (full)"):
        source = organisms(out, preset, seed, threads, rebuild, positive_control)
    with one_thread():
        job = ControlJob(out, preset, seed, exp_cfg.model_dump(), control_sweep)
        child = PositiveControl(job) if positive_control else None
        try:
            pair = organism_pair(out / "organism")
            experiment = study(pair, out / "full", sweep, exp_cfg, clock, "full")
            positive = child.result(clock) if child else None
        finally:
            if child:
                child.stop()
    machine = machine_description()
    results = write_pipeline_report(experiment, out, pair, clock.stage, positive=positive, machine=machine)
    with clock.stage("dashboard"):
        dashboard(out, positive is not None, exp_cfg.device)
    results = results.with_facts(
        organism_source=source, machine=machine, finished_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        timings_s=clock.wall, cpu_s=clock.cpu,
        wall_s=round(time.perf_counter() - started, 1))  # the rank1 stages overlap the full study
    write_results(results, out)
    console.print(f"[bold green]demo done[/] in {results.wall_s:.0f} s: {out / 'report.md'}")
    return results


def dashboard(out: Path, with_positive: bool, device: str) -> Path:
    """out/dashboard: the feature dashboard of the full study, with the positive control's planted
    latents when it ran (open out/dashboard/index.html, or serve it with `tooldiff serve --dashboard`)."""
    from tooldiff.report.dashboard import RunPaths, write_dashboard

    paths = RunPaths(out / "full" / "experiment", out / "full" / "crosscoders", out / "organism", out / "results.json",
                     out / "rank1" / "experiment" if with_positive else None)
    return write_dashboard(paths, out / "dashboard", device=device).out


@dataclass(frozen=True)
class ControlJob:
    """What the positive control's process needs: the demo's output directory, the organism's
    preset and seed, the experiment config (a dict: it crosses the process boundary) and the sweep."""

    out: Path
    preset: str
    seed: int
    exp_cfg: dict
    sweep: Path


def run_positive_control(job: ControlJob) -> tuple[dict, Clock]:
    """The rank1 organism and its study; returns (positive summary, its stages' clock)."""
    from tooldiff.experiment import load_experiment_config
    from tooldiff.organism import build_organism

    out, clock = job.out, Clock()
    with clock.stage("organism (rank1)"):
        build_organism(out / "organism-rank1", preset=job.preset, seed=job.seed, variant="rank1",
                       shared_from=out / "organism")  # same data, tokenizer and base: only RL differs
    # The instrument under test is the main study's ranking (contrast and pool); the grid is cut
    # to the top latent's ablations, since the control asks about ablation. The planted change is
    # spread over every token (its gate is centred over all of them), so the crosscoder learns
    # from every prompt token and the ablation acts at every position: harvested at the decision
    # token only, no latent came closer than |cos| 0.86 and ablation changed nothing (docs/organism.md).
    pc_cfg = load_experiment_config({**job.exp_cfg, "grid": "ablate", "positions": "all"})
    pc = study(organism_pair(out / "organism-rank1"), out / "rank1", job.sweep, pc_cfg, clock, "rank1",
               harvest_positions="prompt")
    return positive_summary(pc), clock


def _child_main(conn, job: ControlJob, log: Path) -> None:
    """Entry of the child process: its console output goes to `log`, its result up the pipe."""
    from tooldiff.jobs import output_to

    log.unlink(missing_ok=True)
    torch.set_num_threads(1)
    with output_to(log):
        try:
            conn.send(("ok", run_positive_control(job)))
        except BaseException as e:  # noqa: BLE001 - every failure must reach the parent
            conn.send(("error", e if isinstance(e, UserError) else RuntimeError(f"{type(e).__name__}: {e}")))
            raise


class PositiveControl:
    """The positive control running in a child process (spawned: no fork of a threaded parent)."""

    def __init__(self, job: ControlJob):
        ctx = multiprocessing.get_context("spawn")
        self.log = job.out / "rank1" / "log.txt"
        self.conn, child_conn = ctx.Pipe(duplex=False)
        self.process = ctx.Process(target=_child_main, args=(child_conn, job, self.log),
                                   name="tooldiff-positive-control")
        self.process.start()
        child_conn.close()
        say(f"positive control (rank1 organism) running beside the full study; its log: {self.log}")

    def result(self, clock: Clock) -> dict:
        with clock.stage("rank1 (waiting for the positive control)"):
            try:
                status, payload = self.conn.recv()
            except EOFError:
                raise RuntimeError(f"the positive-control process died; see {self.log}") from None
            self.process.join()
        if status != "ok":
            raise payload
        summary, child_clock = payload
        clock.merge(child_clock)
        return summary

    def stop(self) -> None:
        """End the child if the parent failed first (a finished child has exited already)."""
        if self.process.is_alive():
            self.process.terminate()
        self.process.join()
