"""`tooldiff run CONFIG`: every stage of a study on a real model pair, from one file.

pair check (configs + tokenizers, no weights) → data splits → harvest → crosscoder sweep →
features + experiment (on the calibration and test splits) → report. Each stage is the
package's own entry point, and each one resumes, so rerunning the command after an
interruption continues where it stopped.

The stages after the pair check are `tooldiff.pipeline.run_pipeline`, the one the demo runs too:
the study only makes the `ModelPair` (models, layer, the three rendered splits) from its TOML.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from rich.console import Console
from rich.table import Table

from tooldiff.crosscoder.config import SweepConfig, load_sweep, parse_sweep
from tooldiff.errors import UserError, iter_jsonl
from tooldiff.pair import SPLITS, ModelPair
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


def study_pair(cfg: StudyConfig, out: Path) -> ModelPair:
    """Resolve the models, check the pair (no weights), write the three data splits under
    out/data, and return the pair the pipeline runs on."""
    from tooldiff.hf import load_tokenizer
    from tooldiff.study.data import write_split
    from tooldiff.study.pair import check_pair_dirs, resolve_model
    from tooldiff.study.render import render_split

    rl_dir = resolve_model(cfg.local_or_id(cfg.pair.rl), cfg.pair.revision)
    base_dir = resolve_model(cfg.local_or_id(cfg.pair.base), cfg.pair.revision)
    check_pair_dirs(rl_dir, base_dir, cfg.pair.layer)
    tokenizer = load_tokenizer(rl_dir)
    raw = {split: write_split(cfg, split, out / "data" / f"{split}.jsonl") for split in SPLITS}
    check_no_overlap(raw)
    splits = {split: (render_split(path, tokenizer, cfg.pair.prompt_format),) for split, path in raw.items()}
    return ModelPair(name=cfg.name, base=base_dir, rl=rl_dir, tokenizer=rl_dir, layer=cfg.pair.layer, splits=splits)


def study_experiment_config(cfg: StudyConfig):
    from tooldiff.experiment import load_experiment_config
    from tooldiff.prompts import PARSE_FORMAT

    return load_experiment_config({"seed": cfg.seed, "device": cfg.runtime.device,
                                   "parse_format": PARSE_FORMAT[cfg.pair.prompt_format], **cfg.experiment})


def run_study(cfg: StudyConfig, plan: bool = False, out: Optional[Path] = None):
    """Run (or, with `plan`, only estimate) the whole study; returns the results (report.Results)
    or the plan (a dict)."""
    sweep = study_sweep(cfg)
    if plan:
        estimate = plan_study(cfg, sweep)
        print_plan(cfg, estimate, Console())
        return estimate.to_dict()
    from tooldiff.pipeline import HarvestOptions, run_pipeline
    from tooldiff.report import write_results

    out = Path(out) if out is not None else cfg.work_path(cfg.out)
    rt, timings = cfg.runtime, {}
    exp_cfg = study_experiment_config(cfg)
    with stage("pair + data", timings):
        pair = study_pair(cfg, out)
    harvest = HarvestOptions(positions=cfg.pair.positions, batch_size=rt.harvest_batch_size, shard_rows=rt.shard_rows,
                             dtype=rt.store_dtype, model_dtype=rt.dtype)
    results = run_pipeline(pair, sweep, exp_cfg, out, harvest=harvest, timer=lambda name: stage(name, timings))
    results = results.with_facts(timings_s=timings, study=cfg.model_dump(mode="json"))
    write_results(results, out)
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
