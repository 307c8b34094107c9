"""`tooldiff run CONFIG`: every stage of a study on a real model pair, from one file.

pair check (configs + tokenizers, no weights) → data splits → harvest → crosscoder sweep →
features + experiment (on the calibration and test splits) → report. Each stage is the
package's own entry point, and each one resumes, so rerunning the command after an
interruption continues where it stopped.

The experiment stage opens a study like an organism: `OUT/pair/organism.json` names the two
model directories, the layer and the calibration/test files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from rich.console import Console
from rich.table import Table

from tooldiff.crosscoder.config import SweepConfig, load_sweep, parse_sweep
from tooldiff.errors import UserError, iter_jsonl
from tooldiff.features.ranking import RUN_CROSSCODERS, RUN_EXPERIMENT
from tooldiff.progress import console, stage
from tooldiff.study.config import StudyConfig
from tooldiff.study.plan import Plan, plan_study



def study_sweep(cfg: StudyConfig) -> SweepConfig:
    if cfg.sweep.file is not None:
        return load_sweep(cfg.path(cfg.sweep.file))
    raw = {"crosscoder": cfg.sweep.crosscoder, **({"train": cfg.sweep.train} if cfg.sweep.train else {})}
    return parse_sweep(raw, source="study sweep")


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} TB"


def _fmt_seconds(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h"


def print_plan(cfg: StudyConfig, plan: Plan, out: Console) -> None:
    m = plan.model
    out.print(f"[bold]{cfg.name}[/]: {cfg.pair.rl} vs {cfg.pair.base}, {m['model_type']}, "
              f"{m['params'] / 1e9:.2f} B params, d={m['d_model']}, {m['n_layers']} layers, layer {cfg.pair.layer}, "
              f"{cfg.runtime.device}/{cfg.runtime.dtype}; rates measured on {plan.rates.gpu} ({plan.rates.source})",
              highlight=False, soft_wrap=True)
    table = Table(title="plan (estimates; no weights loaded)")
    for col in ("stage", "tokens", "disk", "memory", "time", "what"):
        table.add_column(col, justify="left" if col in ("stage", "what") else "right")
    for s in plan.stages:
        table.add_row(s.stage, f"{s.tokens:,}", _fmt_bytes(s.disk_bytes), _fmt_bytes(s.memory_bytes),
                      _fmt_seconds(s.seconds), s.note)
    table.add_row("[bold]total", "", _fmt_bytes(sum(s.disk_bytes for s in plan.stages)),
                  _fmt_bytes(max(s.memory_bytes for s in plan.stages)) + " peak", _fmt_seconds(plan.total_seconds), "")
    out.print(table)
    for w in plan.warnings:
        out.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)


def write_pair_dir(out: Path, rl_dir: Path, base_dir: Path, layer: int, calibration: Path, test: Path) -> Path:
    """`OUT/pair/organism.json`: what the experiment stage needs to open the study's pair."""
    out.mkdir(parents=True, exist_ok=True)
    info = {"kind": "study-pair", "variant": "pair", "layer": {"recommended": layer},
            "paths": {"base": str(base_dir.resolve()), "rl": str(rl_dir.resolve()),
                      "data": {"calibration": str(calibration.resolve()), "test": str(test.resolve())}}}
    (out / "organism.json").write_text(json.dumps(info, indent=2) + "\n")
    return out


def _prepare(cfg: StudyConfig, out: Path) -> tuple[Path, Path, dict[str, Path]]:
    """Resolve the models, check the pair (no weights), and write the three data splits."""
    from tooldiff.hf import load_tokenizer
    from tooldiff.study.data import write_split
    from tooldiff.study.pair import check_pair_dirs, resolve_model
    from tooldiff.study.render import render_split

    rl_dir = resolve_model(cfg.local_or_id(cfg.pair.rl), cfg.pair.revision)
    base_dir = resolve_model(cfg.local_or_id(cfg.pair.base), cfg.pair.revision)
    check_pair_dirs(rl_dir, base_dir, cfg.pair.layer)
    tokenizer = load_tokenizer(rl_dir)
    raw = {split: write_split(cfg, split, out / "data" / f"{split}.jsonl") for split in ("train", "calibration", "test")}
    check_no_overlap(raw)
    splits = {split: render_split(path, tokenizer, cfg.pair.prompt_format) for split, path in raw.items()}
    return rl_dir, base_dir, splits


def run_study(cfg: StudyConfig, plan: bool = False, out: Optional[Path] = None) -> dict:
    """Run (or, with `plan`, only estimate) the whole study; returns the results or the plan."""
    sweep = study_sweep(cfg)
    if plan:
        estimate = plan_study(cfg, sweep)
        print_plan(cfg, estimate, Console())
        return estimate.to_dict()
    from tooldiff.activations import harvest_pair
    from tooldiff.crosscoder import train_sweep
    from tooldiff.experiment import load_experiment_config, run_experiment
    from tooldiff.report import write_report

    out = Path(out) if out is not None else cfg.work_path(cfg.out)
    rt, timings = cfg.runtime, {}
    from tooldiff.prompts import PARSE_FORMAT

    exp_cfg = load_experiment_config({"seed": cfg.seed, "device": rt.device,
                                      "parse_format": PARSE_FORMAT[cfg.pair.prompt_format], **cfg.experiment})
    with stage("pair + data", timings):
        rl_dir, base_dir, splits = _prepare(cfg, out)
    with stage("harvest", timings):
        harvest_pair(base=str(base_dir), rl=str(rl_dir), layer=cfg.pair.layer, data=splits["train"], out=out / "acts",
                     positions=cfg.pair.positions, batch_size=rt.harvest_batch_size, shard_rows=rt.shard_rows,
                     dtype=rt.store_dtype, device=rt.device, model_dtype=rt.dtype)
    with stage("train", timings):
        train_sweep(acts=out / "acts", config=sweep, out=out / RUN_CROSSCODERS, device=rt.device)
    with stage("experiment", timings):
        pair_dir = write_pair_dir(out / "pair", rl_dir, base_dir, cfg.pair.layer, splits["calibration"], splits["test"])
        experiment = run_experiment(pair_dir, out / RUN_CROSSCODERS, out / RUN_EXPERIMENT, exp_cfg)
    with stage("report", timings):
        results = write_report(experiment, out, organism_info=None)
    results["timings_s"] = timings
    results["study"] = cfg.model_dump(mode="json")
    (out / "results.json").write_text(json.dumps(results, indent=1))
    console.print(f"[bold green]study done[/] in {sum(timings.values()):.0f} s: {out / 'report.md'}")
    return results


def check_no_overlap(splits: dict[str, Path]) -> None:
    """Feature selection and evaluation must use disjoint prompts (SPEC section 1)."""
    seen: dict[str, str] = {}
    for split, path in splits.items():
        for _, rec in iter_jsonl(path, f"{split} split"):
            key = rec.get("text") or json.dumps(rec.get("messages"), sort_keys=True)
            if key in seen and seen[key] != split and {seen[key], split} & {"test"}:
                raise UserError(f"data: a {split} prompt (id {rec.get('id')!r}) is also in {seen[key]}; "
                                "the test split must be disjoint from train and calibration")
            seen.setdefault(key, split)
