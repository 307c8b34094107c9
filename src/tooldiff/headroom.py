"""A twin with headroom: the paper's steering claim, tested where the model has room to rise.

The paper steered one RL-exclusive latent up in a model at 22.5 % and reported +65 pp. The
organism's kept twin sits at 80-96 %, where steering up cannot show much. Its RL run saved the
twin at every scored step (organism/checkpoints.py), so an early checkpoint is a twin with
headroom: the one whose strict accuracy on *calibration* call prompts (read by `tooldiff
emergence`, emergence.json) is closest to TARGET_STRICT; the test split never chooses.

`tooldiff headroom` exports that checkpoint as a model directory, runs the pipeline on (base,
checkpoint) with the paper's grid (α ∈ ExperimentConfig.alphas, at the last prompt token: the
top latent's steers and their panels alone, GRID; the splice and ablations are the study's), then
the experiment again with the interventions at every position, and writes OUT/headroom.md: each
steer of the top latent beside its random, unrelated-latent and difference-of-means rivals. Given
the final twin's crosscoders (`--transfer-from`), it also adds each one's top RL latent (selected
on the real pair's calibration split, as the study selects it) into the headroom checkpoint at the
usual doses (experiment.run.run_transfer): does the final twin's feature lift a model that has room?
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from tooldiff.errors import UserError
from tooldiff.pair import ModelPair

TARGET_STRICT = 0.25  # the paper's RL model before steering: 22.5 %
MODEL_DIR, POSITIONS, TRANSFER_DIR = "model", ("last_prompt", "all"), "transfer"
TABLE_FILE = "headroom.md"
GRID = "steer"  # the top latent's steer grid with its panels and rivals (experiment.config.GRIDS)


def headroom_step(emergence_json: Path, target: float = TARGET_STRICT) -> tuple[int, float]:
    """(step, calibration strict) of the RL checkpoint closest to `target` (ties: the earlier)."""
    try:
        rows = json.loads(Path(emergence_json).read_text())["rows"]
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"cannot read the emergence table {emergence_json} ({e}); run `tooldiff emergence` first") from None
    scored = [(abs(r["calibration"]["strict"] - target), r["step"], r["calibration"]["strict"]) for r in rows if r["step"] > 0]
    if not scored:
        raise UserError(f"{emergence_json} lists no RL checkpoint")
    _, step, strict = min(scored)
    return step, strict


def export_checkpoint(organism_dir: Path, step: int, out: Path) -> Path:
    """The RL checkpoint at `step` as a model directory (config, weights, tokenizer) at `out`."""
    from tooldiff.hf import save_model
    from tooldiff.organism.checkpoints import load_checkpoint

    model = load_checkpoint(organism_dir, step)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(Path(organism_dir) / "rl", tmp, ignore=shutil.ignore_patterns("*.safetensors", "checkpoints"))
    save_model(model, tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def claim_dirs(out: Path) -> tuple[Path, Path]:
    """(steered, transfer) experiment directories of a headroom run in `out`: what the claims read."""
    from tooldiff.features.ranking import RUN_EXPERIMENT

    return out / POSITIONS[0] / RUN_EXPERIMENT, out / TRANSFER_DIR


def headroom_pair(real: ModelPair, model_dir: Path, step: int) -> ModelPair:
    return replace(real, name=f"{real.name} (RL step {step}: headroom)", rl=model_dir, planted_D=None)


@dataclass(frozen=True)
class HeadroomJob:
    """What `tooldiff headroom` runs: the real pair and its organism (with RL checkpoints), the
    emergence table that chooses the checkpoint, the sweep and grid, and where it all goes.
    `transfer_from`: the final twin's crosscoders (trained on `real`), for the transfer section."""

    real: ModelPair
    organism_dir: Path
    emergence_json: Path
    sweep: object  # a sweep config (crosscoder.SweepConfig)
    experiment: object  # an ExperimentConfig
    out: Path
    transfer_from: Path | None = None


def run_headroom(job: HeadroomJob) -> Path:
    """Export the headroom checkpoint, run the pipeline and the all-positions experiment on it (and
    the final twin's transfer into it), write OUT/headroom.md; returns that file."""
    from tooldiff.experiment import run_experiment
    from tooldiff.experiment.run import run_transfer
    from tooldiff.features.ranking import RUN_CROSSCODERS
    from tooldiff.pipeline import run_pipeline

    step, strict = headroom_step(job.emergence_json)
    out, cfg = job.out, job.experiment.model_copy(update={"grid": GRID})
    out.mkdir(parents=True, exist_ok=True)
    model_dir = out / MODEL_DIR
    if not (model_dir / "config.json").is_file():
        export_checkpoint(job.organism_dir, step, model_dir)
    pair = headroom_pair(job.real, model_dir, step)
    runs = {POSITIONS[0]: run_pipeline(pair, job.sweep, cfg.model_copy(update={"positions": POSITIONS[0]}),
                                       out / POSITIONS[0], report=False)}
    for positions in POSITIONS[1:]:
        runs[positions] = run_experiment(pair, out / POSITIONS[0] / RUN_CROSSCODERS, out / positions / "experiment",
                                         cfg.model_copy(update={"positions": positions}))
    transfer = run_transfer(job.real, job.transfer_from, model_dir, out / TRANSFER_DIR, cfg) if job.transfer_from else None
    path = out / TABLE_FILE
    path.write_text(markdown(step, strict, runs, transfer))
    return path


def _effects(summary, model: str, intervention: str) -> list:
    """The effect conditions of one intervention on one model slot, in table order."""
    return sorted((c for c in summary.conditions if c.model == model and c.intervention == intervention
                   and c.role == "effect" and c.effect),
                  key=lambda c: (c.crosscoder or "", str(c.features), c.alpha or 0, c.dose or 0))


def _pp(effect) -> str:
    return f"{100 * effect.diff:+.1f} [{100 * effect.ci95[0]:+.1f}, {100 * effect.ci95[1]:+.1f}]"


def _row(c, by_key: dict) -> str:
    verdict = (c.verdict or {}).get("strict")
    span = verdict.control_range if verdict and verdict.control_range else None
    controls = f"{100 * span[0]:+.1f} to {100 * span[1]:+.1f}" if span else "–"
    rivals = "; ".join(_pp(by_key[k].effect["strict"]) for k in c.rivals if k in by_key and by_key[k].effect) or "–"
    beats = "–" if verdict is None else ("yes" if verdict.beats_controls else "no")
    size = c.alpha if c.alpha is not None else c.dose
    return (f"| {c.crosscoder or '–'} | {','.join(map(str, c.features))} | {size:g} | {_pp(c.effect['strict'])} | "
            f"{controls} | {rivals} | {beats} |")


def _section(title: str, summary, model: str, intervention: str, size: str) -> list[str]:
    none, by_key = summary.reference(model), {c.key: c for c in summary.conditions}
    call = (none.per_kind or {}).get("call")
    on_calls = f"; on its call prompts {100 * call.strict:.1f} % (n = {call.n})" if call else ""
    return [f"## {title}", "",
            f"Unsteered: strict {100 * none.metrics.strict.mean:.1f} % over every kind (n = {none.metrics.n})"
            f"{on_calls}.", "",
            f"| crosscoder | latent(s) | {size} | Δstrict [95 % CI] | controls (range) | DoM rival | beats controls |",
            "|---|---|---|---|---|---|---|",
            *[_row(c, by_key) for c in _effects(summary, model, intervention)], ""]


def markdown(step: int, strict: float, runs: dict, transfer=None) -> str:
    lines = [f"# A twin with headroom: RL step {step}", "",
             f"Chosen on calibration call prompts: strict {100 * strict:.1f} % (closest to "
             f"{100 * TARGET_STRICT:.0f} %). Test split below; Δstrict in pp against the same model unsteered, "
             "95 % bootstrap CI; controls: random directions and unrelated latents at the same size (range of "
             "their Δstrict); rival: the difference-of-means direction.", ""]
    for positions, summary in runs.items():
        lines += _section(f"Steering at positions: {positions}", summary, "rl", "steer", "α")
    if transfer is not None:
        lines += _section("The final twin's top latent added into the headroom checkpoint (transfer)", transfer,
                          "base", "add", "dose")
    return "\n".join(lines)
