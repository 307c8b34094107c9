"""`tooldiff demo`: the whole study on the embedded organism, end to end, with stage timings.

organism (cached) → harvest → crosscoder sweep → features → experiment → report, then the same
instrument on the rank1 positive-control organism, whose answer is known.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tooldiff.errors import UserError
from tooldiff.progress import console, stage

CONFIGS = Path(__file__).resolve().parents[2] / "configs"  # the repository's configs/ (editable install)
DEMO_SWEEP, POSITIVE_SWEEP = CONFIGS / "sweep-demo.toml", CONFIGS / "sweep-positive.toml"


def training_data(org, out: Path) -> Path:
    """Crosscoder training prompts: the pretrain and RL splits plus generic text — never the
    calibration or test prompts the features are selected and judged on."""
    rows = org.records("rl") + org.records("pretrain")
    if "generic" in org.data:
        rows += [r for r in org.records("generic") if r.get("split") not in ("calibration", "test")]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def study(org_dir: Path, out: Path, sweep: Path, exp_cfg, timings: dict, tag: str) -> dict:
    """harvest → train → experiment for one organism; returns the experiment summary."""
    from tooldiff.activations import harvest_pair
    from tooldiff.crosscoder import train_sweep
    from tooldiff.experiment import run_experiment
    from tooldiff.organism import load_organism

    org = load_organism(org_dir, models=False)
    planted = None
    if org.planted_path is not None:
        tensors, _ = org.planted()
        planted = tensors["direction_D"]
    with stage(f"{tag}: harvest", timings):
        data = training_data(org, out / "train_prompts.jsonl")
        harvest_pair(base=str(org.base_path), rl=str(org.rl_path), layer=org.layer, data=data, out=out / "acts",
                     positions="decision", device=exp_cfg.device)
    with stage(f"{tag}: train", timings):
        train_sweep(acts=out / "acts", config=sweep, out=out / "crosscoders", device=exp_cfg.device)
    with stage(f"{tag}: experiment", timings):
        return run_experiment(org_dir, out / "crosscoders", out / "experiment", exp_cfg, planted_D=planted)


def run_demo(out: Path, preset: str = "default", seed: int = 0, sweep: Path | None = None,
             n_per_kind: int = 60, positive_control: bool = True, device: str = "cpu") -> dict:
    from tooldiff.experiment import load_experiment_config
    from tooldiff.organism import build_organism, load_organism
    from tooldiff.report import write_report

    sweep = sweep or DEMO_SWEEP
    for path in (sweep, POSITIVE_SWEEP):
        if not path.is_file():
            raise UserError(f"sweep config {path} does not exist (the demo runs from a checkout of the repository)")
    torch.manual_seed(seed)
    timings: dict[str, float] = {}
    exp_cfg = load_experiment_config({"n_per_kind": n_per_kind, "seed": seed, "device": device})
    with stage("organism (full)", timings):
        build_organism(out / "organism", preset=preset, seed=seed, variant="full")
    experiment = study(out / "organism", out / "full", sweep, exp_cfg, timings, "full")
    positive = None
    if positive_control:
        with stage("organism (rank1)", timings):
            build_organism(out / "organism-rank1", preset=preset, seed=seed, variant="rank1")
        # The planted change gates on should-call prompts: rank by that contrast, over every RL-side latent.
        pc_cfg = exp_cfg.model_copy(update={"alphas": [1], "doses": [1.0], "contrast": "strict", "pool": "rl_side"})
        pc = study(out / "organism-rank1", out / "rank1", POSITIVE_SWEEP, pc_cfg, timings, "rank1")
        positive = positive_summary(pc)
    with stage("report", timings):
        info = load_organism(out / "organism", models=False).info
        results = write_report(experiment, out, organism_info=info, positive=positive)
    results["timings_s"] = timings
    (out / "results.json").write_text(json.dumps(results, indent=1))
    console.print(f"[bold green]demo done[/] in {sum(timings.values()):.0f} s: {out / 'report.md'}")
    return results


def positive_summary(pc: dict) -> dict:
    """The positive control's verdict: planted direction recovered, and its ablation's effect."""
    lines = []
    for c in pc["conditions"]:
        if c["intervention"] == "ablate" and c["role"] == "effect" and len(c["features"]) == 1:
            v = c["verdict"]["call_rate"]
            lines.append(f"{c['crosscoder']}: ablating latent {c['features'][0]} in RL changes the call rate by "
                         f"{100 * c['effect']['call_rate']['diff']:+.1f} pp (CI {100 * c['effect']['call_rate']['ci95'][0]:+.1f}, "
                         f"{100 * c['effect']['call_rate']['ci95'][1]:+.1f}); beyond controls: {v['beats_controls']}")
    return {"crosscoders": pc["positive_control"], "ablation": lines,
            "models": {c["model"]: c["metrics"] for c in pc["conditions"] if c["intervention"] == "none"}}
