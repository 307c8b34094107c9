"""Null pairs: the instrument's false-positive rate, on pairs where RL taught no tool use.

A pipeline that finds "tool features" in every pair it is given proves nothing. So the pipeline
(tooldiff.pipeline.run_pipeline, the same selection rules, sweep and experiment config) runs on
the organism's real pair and beside it on
- base vs base: the base in both slots, so nothing differs between them;
- base vs sham twin (optional): the same GRPO run from the same base with a reward that ignores
  tool use (`tooldiff organism --variant sham --shared-from`; is it a fair null? `tooldiff
  null-check`).

Per pair: how many latents of each crosscoder pass the tool-feature selection
(features.ranking.passes_selection), whether the single-latent claim "holds" by the report's rule,
and every sweep cell (mean Δstrict over the crosscoders) beside the real pair's.
`tooldiff null-pairs` writes OUT/<pair>/ (each a full pipeline run) and OUT/null_pairs.{json,md}.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Optional

from tooldiff.errors import UserError
from tooldiff.pair import ModelPair

REAL, BASE_VS_BASE, SHAM = "real", "base-vs-base", "sham"
JSON_FILE, TABLE_FILE = "null_pairs.json", "null_pairs.md"
NULL_GRID = "top_latent"  # the experiment grid of a null pair (experiment.config.GRIDS)


@dataclass(frozen=True)
class PairOutcome:
    """What the instrument found on one pair."""

    name: str
    n_test: int
    strict: dict[str, Optional[float]]  # base, rl: strict on the test prompts without intervention
    passing: dict[str, list[int]]  # crosscoder -> latents passing the tool-feature selection
    n_latents: dict[str, int]
    claim_holds: bool  # the single-latent claim (report.results.single_latent_claim)
    n_tried: int
    n_winners: int
    largest: Optional[dict]  # the single-latent condition with the largest |Δstrict|
    sweep: dict[str, tuple[float, float, int]]  # sweep cell -> (mean Δstrict, std, crosscoders)


def _digest(model_dir: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        h.update(path.read_bytes())
    return h.hexdigest()


def null_pairs(real: ModelPair, sham: Optional[ModelPair] = None) -> dict[str, ModelPair]:
    """The real pair, base vs base and, if given, base vs sham (which must share the real base)."""
    pairs = {REAL: real, BASE_VS_BASE: replace(real, name=f"{real.name} (base vs base)", rl=real.base,
                                               planted_D=None)}
    if sham is not None:
        if _digest(sham.base) != _digest(real.base):
            raise UserError(f"the sham twin's base {sham.base} is not the real pair's base {real.base}; "
                            "build it with --variant sham --shared-from <the real organism>")
        pairs[SHAM] = sham
    return pairs


def sweep_cell(row) -> str:
    """A sweep row's name: model, intervention, features and its strength."""
    strength = f" a={row.alpha:g}" if row.alpha is not None else f" dose={row.dose:g}" if row.dose is not None else ""
    return f"{row.model} {row.intervention} {row.features}{strength}"


def outcome(name: str, run_dir: Path, results, min_auroc: float) -> PairOutcome:
    """The instrument's findings on one pair, from its pipeline run."""
    from tooldiff.experiment.summary import read_summary
    from tooldiff.features.ranking import RUN_EXPERIMENT

    rankings = read_summary(run_dir / RUN_EXPERIMENT).rankings
    claim = results.findings.single_latent
    return PairOutcome(
        name=name, n_test=results.n_test,
        strict={m: (metrics.strict.mean if metrics else None) for m, metrics in results.models.items()},
        passing={cc: r.passing(min_auroc) for cc, r in rankings.items()},
        n_latents={cc: len(r.latents) for cc, r in rankings.items()},
        claim_holds=claim.holds, n_tried=claim.n_tried, n_winners=len(claim.winners),
        largest=claim.largest.to_dict() if claim.largest else None,
        sweep={sweep_cell(row): (row.mean_diff, row.std_diff, row.n_crosscoders) for row in results.sweep},
    )


def run_null_pairs(pairs: dict[str, ModelPair], sweep, experiment_config, out: Path, min_auroc: float) -> list[PairOutcome]:
    """The pipeline on each pair into out/<name>, then the side-by-side table."""
    from tooldiff.progress import say

    outcomes = []
    for name, pair in pairs.items():
        say(f"null pairs: the pipeline on {name}")
        outcomes.append(run_pair(name, pair, sweep, experiment_config, out, min_auroc))
    write_outputs(outcomes, out, experiment_config, min_auroc)
    return outcomes


def run_pair(name: str, pair: ModelPair, sweep, experiment_config, out: Path, min_auroc: float) -> PairOutcome:
    """The pipeline on one pair into out/<name> (resuming what is there), and what it found."""
    from tooldiff.pipeline import run_pipeline

    config = pair_config(name, experiment_config)
    return outcome(name, out / name, run_pipeline(pair, sweep, config, out / name), min_auroc)


def pair_config(name: str, experiment_config):
    """The experiment a pair runs: the real pair the whole grid; a null pair, of a full grid, only
    NULL_GRID: the splice and every op of its top latent, with their panels. That is what a null
    is compared on (the same cells of the real twin, the single-latent claim, the claims table's
    null column); the top |S| cells it leaves out show as "–" beside the real twin's."""
    if name == REAL or experiment_config.grid != "full":
        return experiment_config
    return experiment_config.model_copy(update={"grid": NULL_GRID})


def write_outputs(outcomes: list[PairOutcome], out: Path, experiment_config, min_auroc: float,
                  sham_check: Optional[dict] = None) -> None:
    """null_pairs.json and null_pairs.md; `sham_check` (experiment.nulls.null_check) says whether
    the sham twin is a fair null, beside its row."""
    from tooldiff.features.ranking import selection_rule

    payload = {"format": 1, "selection": selection_rule(min_auroc), "experiment": experiment_config.model_dump(),
               "null_grid": pair_config(BASE_VS_BASE, experiment_config).grid,
               "pairs": [asdict(o) for o in outcomes], "sham_check": sham_check}
    (out / JSON_FILE).write_text(json.dumps(payload, indent=2) + "\n")
    table = markdown(outcomes, selection_rule(min_auroc), experiment_config.seed)
    (out / TABLE_FILE).write_text(table + (sham_note(sham_check) if sham_check else ""))


def sham_note(check: dict) -> str:
    """How the sham twin moved (tool use per kind, KL and ‖ΔW‖ against the real twin's), and
    whether that makes it a fair null by each reading of the rule."""
    shifts = ", ".join(f"{s['kind']} {100 * s['diff']:+.1f} pp [{100 * s['ci95'][0]:+.1f}, {100 * s['ci95'][1]:+.1f}]"
                       for s in check["sham"]["shifts"])
    ratios, crit = check["sham_over_real"], check["criteria"]
    untouched = all(crit["tool_use_untouched"].values())
    moves = crit["moves_like_rl"]
    return "\n".join([
        "", "## Is the sham twin a fair null? (`tooldiff null-check`)", "",
        f"- Calls per request kind against the base (test split, paired 95 % CI): {shifts}; "
        f"within ±{100 * crit['tool_shift_cap']:.0f} pp at every kind: {'yes' if untouched else 'no'}.",
        f"- Moved against the real twin: ‖ΔW‖ {ratios['weight_norm']:.2f}x, KL per prompt token "
        f"{ratios['kl_all']:.2f}x, KL at the decision token {ratios['kl_decision']:.3f}x "
        f"(cap {crit['move_ratio_cap']:g}x either way).",
        f"- Fair by our rule (tool use untouched, KL *and* ‖ΔW‖ within the cap; docs/experiment.md): "
        f"{'yes' if check['fair_null'] else 'no'}; by the looser reading (KL *or* ‖ΔW‖): "
        f"{'yes' if untouched and (moves['kl_all'] or moves['weight_norm']) else 'no'}.", ""])


def _pct(x: Optional[float]) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def _largest(o: PairOutcome) -> str:
    if not o.largest:
        return "–"
    lo, hi = o.largest["ci95"]
    return (f"{o.largest['intervention']} {o.largest['features']} on {o.largest['crosscoder']}: "
            f"{100 * o.largest['diff']:+.1f} pp [{100 * lo:+.1f}, {100 * hi:+.1f}]")


def markdown(outcomes: list[PairOutcome], rule: str, seed: int) -> str:
    names = [o.name for o in outcomes]
    lines = [f"# Null pairs (seed {seed})", "", f"Tool-feature selection: {rule}.", "",
             "| pair | n test | base strict | RL-slot strict | latents passing (per crosscoder) | "
             "single-latent claim (beats controls / tried) | largest single-latent Δstrict [95 % CI] |",
             "|---|---|---|---|---|---|---|"]
    for o in outcomes:
        passing = ", ".join(f"{cc} {len(ls)}/{o.n_latents[cc]}" for cc, ls in o.passing.items())
        lines.append(f"| {o.name} | {o.n_test} | {_pct(o.strict.get('base'))} | {_pct(o.strict.get('rl'))} | "
                     f"{passing} | {'holds' if o.claim_holds else 'no'} ({o.n_winners}/{o.n_tried}) | {_largest(o)} |")
    cells = sorted({cell for o in outcomes for cell in o.sweep})
    lines += ["", "Every sweep cell: mean Δstrict over the crosscoders (± std), in pp.", "",
              "| condition | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for cell in cells:
        values = [o.sweep.get(cell) for o in outcomes]
        lines.append(f"| {cell} | " + " | ".join("–" if v is None else f"{100 * v[0]:+.1f} ± {100 * v[1]:.1f}"
                                                   for v in values) + " |")
    return "\n".join(lines) + "\n"
