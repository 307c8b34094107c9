"""The claims table: each of the paper's claims beside our number, its rival, a null and a verdict.

claims.py holds the verdict rules; this module feeds them. Its inputs are results.json files
(report.Results): one per organism seed of the real pair, and, optionally, the same pipeline's
results on null pairs (`tooldiff null-pairs`: base vs base, sham twin), matched to a seed by the
organism seed they record. Per claim and seed it reads one pre-registered condition:

- the crosscoder: the first (by name) of the kind the positive control validated, else the first
  DFC, else the first crosscoder: chosen before any effect is looked at, never the best one;
- the condition: the claim's model, intervention, single top latent and strength (CLAIMS);
- the rival: the difference-of-means conditions the effect names (`rivals`), the one that moves
  furthest in the claimed direction; the null: the same condition on the null pairs of that
  seed, the one that moves furthest in the claimed direction.

Where the final twin is too good to show an increase, the headroom twins (headroom.py) test the
steering claim and the transfer of the final twin's latent again (HEADROOM_CLAIMS).

`tooldiff claims RESULTS... [--null NULL_RESULTS...] [--headroom H...] --out claims.md` writes the table; every
report also judges the claims on its own run (`claim_entries`: one seed, no null pair) into
results.json, report.md and the README.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from tooldiff.report.claims import Claim, ClaimVerdict, Context, Measured, judge
from tooldiff.report.results import ReportCondition, Results, crosscoder_kind


@dataclass(frozen=True)
class ClaimSpec:
    claim: Claim
    model: str  # the model the claim acts on (base or rl): whose strict is its baseline
    picks: Callable[[ReportCondition], bool]


def _single(c: ReportCondition) -> bool:
    return c.role == "effect" and len(c.features) == 1


CLAIMS: tuple[ClaimSpec, ...] = (
    ClaimSpec(Claim("splice_rl", "splicing the DFC reconstruction into the RL model raises its tool correctness",
                    "+31.1 ± 9.7 pp (19 → 50.1 %)", +1, 0.311, ("headroom",)),
              "rl", lambda c: c.model == "rl" and c.intervention == "reconstruct"),
    ClaimSpec(Claim("splice_base", "the base's own reconstruction raises its tool correctness (spillover)",
                    "+6.8 ± 5.0 pp (0 → 6.7 %)", +1, 0.068, ("headroom",)),
              "base", lambda c: c.model == "base" and c.intervention == "reconstruct"),
    ClaimSpec(Claim("steer_up", "one RL-exclusive latent steered up (α = 32) raises tool correctness",
                    "+65 pp [47.9, 82.1] (22.5 → 87.5 %)", +1, 0.65, ("positive_control", "headroom")),
              "rl", lambda c: _single(c) and c.model == "rl" and c.intervention == "steer" and c.alpha == 32),
    ClaimSpec(Claim("transfer", "the top RL latent's decoder direction added into the base (dose 1) raises "
                    "its tool correctness", "(ours: transfer without retraining)", +1, 0.0, ("positive_control",)),
              "base", lambda c: _single(c) and c.model == "base" and c.intervention == "add" and c.dose == 1.0),
    ClaimSpec(Claim("ablate", "ablating the top RL-exclusive latent lowers the RL model's tool correctness",
                    "(ours: does tool use need the latent?)", -1, 0.0, ("positive_control",)),
              "rl", lambda c: _single(c) and c.model == "rl" and c.intervention == "ablate"),
)


# The same two claims where the model has room to rise: the headroom twin of each organism seed
# (headroom.py), steered; and the final twin's top latent added into it (experiment.run.run_transfer:
# the headroom twin holds the "base" slot there). Fed by `headroom=` (steered, transfer) runs.
HEADROOM_CLAIMS: tuple[ClaimSpec, ClaimSpec] = (
    ClaimSpec(Claim("steer_up_headroom", "in the headroom twin (the RL checkpoint nearest 25 % calibration strict): "
                    "one RL-exclusive latent steered up (α = 32) raises tool correctness",
                    "+65 pp [47.9, 82.1] (22.5 → 87.5 %)", +1, 0.65, ("positive_control",)),
              "rl", CLAIMS[2].picks),
    ClaimSpec(Claim("transfer_headroom", "the final twin's top RL latent added into the headroom twin (dose 1) "
                    "raises its tool correctness", "(ours: does the final feature lift a model with room?)", +1, 0.0,
                    ("positive_control",)),
              "base", CLAIMS[3].picks),
)


def organism_seed(results: Results) -> int:
    return int((results.organism or {}).get("seed", results.seed))


def chosen_crosscoder(results: Results) -> Optional[str]:
    """The pre-registered crosscoder (module docstring)."""
    names = sorted(results.crosscoders)
    validated = results.positive_control.validated_kinds if results.positive_control else []
    for pool in ([n for n in names if crosscoder_kind(n) in validated], [n for n in names if n.startswith("dfc")], names):
        if pool:
            return pool[0]
    return None


def _condition(results: Results, spec: ClaimSpec, crosscoder: Optional[str]) -> Optional[ReportCondition]:
    return next((c for c in results.conditions if c.crosscoder == crosscoder and c.effect and spec.picks(c)), None)


def _furthest(effects: list, sign: int):
    return max(effects, key=lambda e: sign * e.diff, default=None)


def measure(spec: ClaimSpec, results: Results, nulls: list[Results],
            crosscoder: Optional[str] = None) -> Optional[Measured]:
    """The claim's effect at the seed of `results`, with its rival and null; None if not run.
    `crosscoder`: the one to read (default: chosen_crosscoder(results))."""
    crosscoder = crosscoder or chosen_crosscoder(results)
    c = _condition(results, spec, crosscoder)
    if c is None:
        return None
    sign, strict = spec.claim.sign, c.effect["strict"]
    by_key = {x.key: x for x in results.conditions}
    rival = _furthest([by_key[k].effect["strict"] for k in c.rivals or [] if k in by_key and by_key[k].effect], sign)
    null_conditions = [n for n in (_condition(r, spec, crosscoder) for r in nulls) if n is not None]
    null = _furthest([n.effect["strict"] for n in null_conditions], sign)
    verdict = (c.verdict or {}).get("strict")
    return Measured(seed=organism_seed(results), diff=strict.diff, ci95=tuple(strict.ci95), n=strict.n or c.metrics.n,
                    beats_controls=verdict.beats_controls if verdict else True,  # a splice has no control panel
                    rival_diff=rival.diff if rival else None, null_diff=null.diff if null else None,
                    null_ci95=tuple(null.ci95) if null else None)


def context(spec: ClaimSpec, runs: list[Results]) -> Context:
    """Positive control: passed at every seed (None if it never ran); baseline: the mean strict
    of the model the claim acts on."""
    verdicts = [r.positive_control.passed for r in runs if r.positive_control]
    baselines = [r.models[spec.model].strict.mean for r in runs if r.models.get(spec.model)]
    return Context(positive_control_passed=all(verdicts) if verdicts else None,
                   baseline=sum(baselines) / len(baselines) if baselines else None)


@dataclass(frozen=True)
class ClaimRow:
    spec: ClaimSpec
    measured: list[Measured]
    verdict: ClaimVerdict


def claims_table(runs: list[Results], nulls: list[Results] = (),
                 headroom: list[tuple[Results, Results]] = ()) -> list[ClaimRow]:
    """A row per claim over the seeds of `runs`; with `headroom` ((steered, transfer) results of
    the headroom twins, any seeds of `runs`), the HEADROOM_CLAIMS rows too, each read on the
    crosscoder pre-registered for that seed's real run."""
    rows = []
    for spec in CLAIMS:
        measured = [m for r in runs if (m := measure(spec, r, [n for n in nulls
                                                               if organism_seed(n) == organism_seed(r)])) is not None]
        rows.append(ClaimRow(spec, measured, judge(spec.claim, measured, context(spec, runs))))
    if headroom:
        chosen = {organism_seed(r): chosen_crosscoder(r) for r in runs}
        for spec, at in zip(HEADROOM_CLAIMS, (0, 1)):
            measured = [m for pair in headroom
                        if (m := measure(spec, pair[at], [], chosen.get(organism_seed(pair[at])))) is not None]
            rows.append(ClaimRow(spec, measured, judge(spec.claim, measured, context(spec, runs))))
    return rows


def claim_entries(results: Results) -> list[dict]:
    """The claims judged on `results` alone, as results.json lists them (report.results.ClaimEntry)."""
    entries = []
    for row in claims_table([results]):
        claim, m = row.spec.claim, (row.measured[0] if row.measured else None)
        measured = {} if m is None else {"seed": m.seed, "diff": m.diff, "ci95": list(m.ci95), "n": m.n,
                                          "holds": m.holds(claim.sign), "rival_diff": m.rival_diff}
        entries.append({"key": claim.key, "claim": claim.text, "paper": claim.paper, **measured,
                        "verdict": row.verdict.verdict, "label": row.verdict.label()})
    return entries


def _pp(diff: Optional[float], ci=None) -> str:
    if diff is None:
        return "–"
    return f"{100 * diff:+.1f}" + (f" [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]" if ci else "")


def markdown(rows: list[ClaimRow], runs: list[Results]) -> str:
    seeds = ", ".join(str(organism_seed(r)) for r in runs)
    lines = [f"# The paper's claims, measured (organism seeds {seeds})", "",
             "Δstrict in pp on the test split, paired 95 % bootstrap CI; ✓ = CI excludes zero in the claimed "
             "direction and beats the control panel. Rival: the difference-of-means direction at the same size; "
             "null: the same condition on a null pair (base vs base, sham twin). Verdict rules: docs/claims.md.", "",
             "| claim | paper | ours, per organism seed | rival | null | verdict |", "|---|---|---|---|---|---|"]
    for row in rows:
        sign = row.spec.claim.sign
        ours = "; ".join(f"seed {m.seed}: {_pp(m.diff, m.ci95)} {'✓' if m.holds(sign) else '✗'} (n {m.n})"
                         for m in row.measured) or "–"
        rival = "; ".join(_pp(m.rival_diff) for m in row.measured)
        null = "; ".join(_pp(m.null_diff, m.null_ci95) for m in row.measured)
        lines.append(f"| {row.spec.claim.text} | {row.spec.claim.paper} | {ours} | {rival or '–'} | {null or '–'} | "
                     f"{row.verdict.label()} |")
    return "\n".join(lines) + "\n"


def write_claims(results: list[Path], nulls: list[Path], out: Path, headroom: list[tuple[Path, Path]] = ()) -> Path:
    """The table at `out` from results.json files; `headroom`: (steered, transfer) experiment
    directories of headroom twins (OUT/headroom/last_prompt/experiment, OUT/headroom/transfer)."""
    from tooldiff.experiment.summary import read_summary
    from tooldiff.report.results import build_results, read_results

    runs, null_runs = [read_results(p) for p in results], [read_results(p) for p in nulls]
    twins = [(build_results(read_summary(a)), build_results(read_summary(b))) for a, b in headroom]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown(claims_table(runs, null_runs, twins), runs))
    return out
