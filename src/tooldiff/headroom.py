"""A twin with headroom: the paper's steering claim, tested where the model has room to rise.

The paper steered one RL-exclusive latent up in a model at 22.5 % and reported +65 pp. The
organism's kept twin sits at 80-96 %, where steering up cannot show much. Its RL run saved the
twin at every scored step (organism/checkpoints.py), so an early checkpoint is a twin with
headroom: the one whose strict accuracy on *calibration* call prompts (read by `tooldiff
emergence`, emergence.json) is closest to TARGET_STRICT; the test split never chooses.

`tooldiff headroom` exports that checkpoint as a model directory, runs the pipeline on (base,
checkpoint) with the paper's grid (α ∈ ExperimentConfig.alphas, at the last prompt token), then
the experiment again with the interventions at every position, and writes OUT/headroom.md: each
steer of the top latent beside its random, unrelated-latent and difference-of-means rivals.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

from tooldiff.errors import UserError
from tooldiff.pair import ModelPair

TARGET_STRICT = 0.25  # the paper's RL model before steering: 22.5 %
MODEL_DIR, POSITIONS = "model", ("last_prompt", "all")
TABLE_FILE = "headroom.md"


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


def headroom_pair(real: ModelPair, model_dir: Path, step: int) -> ModelPair:
    return replace(real, name=f"{real.name} (RL step {step}: headroom)", rl=model_dir, planted_D=None)


def run_headroom(real: ModelPair, organism_dir: Path, emergence_json: Path, sweep, experiment_config,
                 out: Path) -> Path:
    """Export the headroom checkpoint, run the pipeline and the all-positions experiment on it,
    write OUT/headroom.md; returns that file."""
    from tooldiff.experiment import run_experiment
    from tooldiff.features.ranking import RUN_CROSSCODERS
    from tooldiff.pipeline import run_pipeline

    step, strict = headroom_step(emergence_json)
    out.mkdir(parents=True, exist_ok=True)
    model_dir = out / MODEL_DIR
    if not (model_dir / "config.json").is_file():
        export_checkpoint(organism_dir, step, model_dir)
    pair = headroom_pair(real, model_dir, step)
    runs = {POSITIONS[0]: run_pipeline(pair, sweep, experiment_config.model_copy(update={"positions": POSITIONS[0]}),
                                       out / POSITIONS[0], report=False)}
    for positions in POSITIONS[1:]:
        runs[positions] = run_experiment(pair, out / POSITIONS[0] / RUN_CROSSCODERS, out / positions / "experiment",
                                         experiment_config.model_copy(update={"positions": positions}))
    path = out / TABLE_FILE
    path.write_text(markdown(step, strict, runs))
    return path


def _steer_effects(summary) -> list:
    """The steer conditions of the top latent(s) on the RL side, with their effects."""
    return sorted((c for c in summary.conditions if c.model == "rl" and c.intervention == "steer"
                   and c.role == "effect" and c.effect), key=lambda c: (c.crosscoder or "", str(c.features), c.alpha))


def _pp(effect) -> str:
    return f"{100 * effect.diff:+.1f} [{100 * effect.ci95[0]:+.1f}, {100 * effect.ci95[1]:+.1f}]"


def _row(c, by_key: dict) -> str:
    verdict = (c.verdict or {}).get("strict")
    span = verdict.control_range if verdict and verdict.control_range else None
    controls = f"{100 * span[0]:+.1f} to {100 * span[1]:+.1f}" if span else "–"
    rivals = "; ".join(_pp(by_key[k].effect["strict"]) for k in c.rivals if k in by_key and by_key[k].effect) or "–"
    beats = "–" if verdict is None else ("yes" if verdict.beats_controls else "no")
    return (f"| {c.crosscoder or '–'} | {','.join(map(str, c.features))} | {c.alpha:g} | {_pp(c.effect['strict'])} | "
            f"{controls} | {rivals} | {beats} |")


def markdown(step: int, strict: float, runs: dict) -> str:
    lines = [f"# A twin with headroom: RL step {step}", "",
             f"Chosen on calibration call prompts: strict {100 * strict:.1f} % (closest to "
             f"{100 * TARGET_STRICT:.0f} %). Test split below; Δstrict in pp against the same model unsteered, "
             "95 % bootstrap CI; controls: random directions and unrelated latents at the same size (range of "
             "their Δstrict); rival: the difference-of-means direction.", ""]
    for positions, summary in runs.items():
        none, by_key = summary.reference("rl"), {c.key: c for c in summary.conditions}
        call = (none.per_kind or {}).get("call")
        on_calls = f"; on its call prompts {100 * call.strict:.1f} % (n = {call.n})" if call else ""
        lines += [f"## Steering at positions: {positions}", "",
                  f"Unsteered: strict {100 * none.metrics.strict.mean:.1f} % over every kind (n = {none.metrics.n})"
                  f"{on_calls}.", "",
                  "| crosscoder | latent(s) | α | Δstrict [95 % CI] | controls (range) | DoM rival | beats controls |",
                  "|---|---|---|---|---|---|---|"]
        lines += [_row(c, by_key) for c in _steer_effects(summary)] + [""]
    return "\n".join(lines)
