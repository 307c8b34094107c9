"""report.md, generated from results.json: every sentence below comes from a number."""

from __future__ import annotations

import platform
from datetime import datetime, timezone

from tooldiff.report.results import ClaimRow, Results, ValidatedClaim

PAPER = {  # SPEC §1: mean ± std over the paper's 48-config sweep, in percentage points
    ("rl", "reconstruct", "-"): "+31.1 ± 9.7 pp",
    ("base", "reconstruct", "-"): "+6.8 ± 5.0 pp",
    ("rl", "steer", "top1@32"): "+65 pp [47.9, 82.1] (one latent)",
    ("rl", "steer", "topS@32"): "+70 pp (plain, 33 latents)",
}


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _pp(x: float) -> str:
    return f"{100 * x:+.1f} pp"


def _ci(ci: list[float]) -> str:
    return f"[{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"


def _models_table(results: Results) -> list[str]:
    lines = ["| model | n | strict (95% CI) | lenient | precision | recall | F1 | FPR | calls/prompt |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in ("base", "rl"):
        m = results.models.get(name)
        if m:
            t, strict = m.trigger, m.strict
            lines.append(f"| {name} | {m.n} | {_pct(strict.mean)} [{_pct(strict.ci95[0])}, {_pct(strict.ci95[1])}] | "
                         f"{_pct(m.lenient.mean)} | {t.precision:.2f} | {t.recall:.2f} | {t.f1:.2f} | {t.fpr:.2f} | "
                         f"{m.calls_per_prompt:.2f} |")
    return lines


def _paper_table(results: Results) -> list[str]:
    lines = ["| condition | ours: mean ± std of Δstrict over crosscoders (n) | paper (lenient, n=40-100) |",
             "|---|---|---|"]
    for row in results.sweep:
        if row.intervention not in ("reconstruct", "reconstruct_mismatched", "steer", "ablate", "ablate_direction",
                                    "add", "negative_steer"):
            continue
        feats = "-" if row.intervention.startswith("reconstruct") else row.features
        knob = f"α={row.alpha:g}" if row.alpha is not None else (f"c={row.dose:g}" if row.dose is not None else "")
        paper_key = (row.model, row.intervention,
                     "-" if feats == "-" else f"{'top1' if feats == 'top1' else 'topS'}@{row.alpha:g}"
                     if row.alpha is not None else feats)
        lines.append(f"| {row.model} {row.intervention} {'' if feats == '-' else feats} {knob} | "
                     f"{_pp(row.mean_diff)} ± {100 * row.std_diff:.1f} ({row.n_crosscoders}) | "
                     f"{PAPER.get(paper_key, '')} |")
    return lines


def _alpha(claim: ClaimRow) -> str:
    return "" if claim.alpha is None else f", α={claim.alpha:g}"


def _validated_findings(v: ValidatedClaim | None) -> list[str]:
    """The single-latent claim restricted to the instruments that passed the positive control."""
    if v is None:
        return ["- No crosscoder kind passed the positive control, so no verdict above rests on a validated "
                "instrument."]
    up = sum(w.diff > 0 for w in v.winners)
    return [f"- **On the validated instruments** ({', '.join(v.kinds)}: {len(v.crosscoders)} crosscoders, the "
            f"kinds that passed the positive control): {len(v.winners)} of {v.n_tried} single-latent conditions "
            f"held; {up} raised strict correctness and {len(v.winners) - up} lowered it."]


def _findings(results: Results) -> list[str]:
    f = results.findings
    single = f.single_latent
    lines = []
    if single.holds:
        lines.append(f"Of {single.n_tried} single-latent steer/ablate conditions, {len(single.winners)} moved strict "
                     "correctness with a 95% CI excluding 0 and beyond their control panels:")
        for w in single.winners:
            rates = ", ".join(f"{kind.replace('_', '-')} {100 * a:.0f} → {100 * b:.0f} %"
                              for kind, (a, b) in (w.call_rate_by_kind or {}).items())
            lines.append(f"- **Held:** {w.intervention} of latent {w.features[0]} ({w.crosscoder}{_alpha(w)}) "
                         f"moved strict correctness by {_pp(w.diff)} {_ci(w.ci95)}, beyond its control panel"
                         + (f"; calls by kind, without → with: {rates}." if rates else "."))
    elif single.largest:
        b = single.largest
        cr = b.control_range
        lines.append(f"- **Did not hold:** of {single.n_tried} single-latent steer/ablate conditions, none moved "
                     f"strict correctness with a 95% CI excluding 0 *and* beyond its control panel. The largest was "
                     f"{b.intervention} of latent {b.features[0]} ({b.crosscoder}{_alpha(b)}): "
                     f"{_pp(b.diff)} {_ci(b.ci95)}; its controls moved it by "
                     f"{'n/a' if cr is None else f'{_pp(cr[0])} to {_pp(cr[1])}'}.")
    if results.positive_control:
        lines += _validated_findings(f.single_latent_validated)
    lines += ["", "Reconstruction splice, matched vs mismatched normalization (the paper's possible artifact):", "",
              "| crosscoder | model | normalization | strict | Δ vs none (95% CI) |", "|---|---|---|---|---|"]
    lines += [f"| {r.crosscoder} | {r.model} | {r.normalization} | {_pct(r.strict.mean)} | "
              f"{_pp(r.diff)} {_ci(r.ci95)} |" for r in f.recon_artifact]
    lines += ["", "Transfer into the base: the RL latent's decoder direction vs the difference-of-means rivals, "
              "same dose:", "", "| crosscoder | dose | latent | strict | Δ call rate | rival | strict | Δ call rate |",
              "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r.crosscoder} | {r.dose} | {r.latent} | {_pct(r.latent_strict)} | "
              f"{_pp(r.latent_call_rate_diff)} | {r.rival} | {_pct(r.rival_strict)} | "
              f"{_pp(r.rival_call_rate_diff)} |" for r in f.dfc_vs_dom]
    return lines


def claims_lines(results: Results) -> list[str]:
    """The paper's claims judged on this run alone (results.claims), as a table."""
    if not results.claims:
        return ["Not judged in this run."]
    lines = ["Each claim's pre-registered condition on this run, judged by the written rules of docs/claims.md; "
             "✓ = its CI excludes zero in the claimed direction and beats its control panel. One organism seed "
             "and no null pair: `tooldiff null-pairs` and `tooldiff claims` add them.", "",
             "| claim | paper | ours: Δstrict [95 % CI] (n) | DoM rival | verdict |", "|---|---|---|---|---|"]
    for c in results.claims:
        ours = "–" if c.diff is None else f"{_pp(c.diff)} {_ci(c.ci95)} {'✓' if c.holds else '✗'} (n {c.n})"
        rival = "–" if c.rival_diff is None else _pp(c.rival_diff)
        lines.append(f"| {c.claim} | {c.paper} | {ours} | {rival} | {c.label} |")
    return lines


def _num(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _splice_loss(results: Results) -> list[str]:
    """Each reconstruction splice's cost in next-token loss (experiment/splice_loss.py)."""
    if not results.splice_loss:
        return ["Not measured in this run."]
    lines = ["CE recovered = (CE_zero − CE_splice) / (CE_zero − CE_clean): 1 when the splice costs nothing, 0 when it "
             "is as bad as zeroing the layer; KL(clean ‖ spliced) per position, nats. Calibration texts; at "
             "`last_prompt` (where the experiment splices) the prompt has no next token, so only KL.", "",
             "| crosscoder | model | texts | positions | n | CE clean / splice / zero | CE recovered | "
             "KL splice / zero | KL recovered |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results.splice_loss:
        ce = "–" if r.ce_clean is None else f"{r.ce_clean:.3f} / {r.ce_splice:.3f} / {r.ce_zero:.3f}"
        lines.append(f"| {r.crosscoder} | {r.model} | {r.texts.replace('_', ' ')} | {r.positions} | {r.n_texts} | "
                     f"{ce} | {_num(r.ce_recovered)} | {r.kl_splice:.4f} / {r.kl_zero:.4f} | "
                     f"{_num(r.kl_recovered)} |")
    return lines


def _pc_verdict(v: dict) -> str:  # a verdict of experiment.positive (per-crosscoder flags)
    if v.get("passed_by_latent_ablation"):
        return "**passed**"
    return "not passed (directional ablation passed)" if v.get("passed_by_direction_ablation") else "not passed"


def _positive(results: Results) -> list[str]:
    pc = results.positive_control
    if not pc:
        return ["No positive control in this run."]
    verdicts = pc.verdicts
    lines = [f"Organism variant `rank1`: RL may only add a gated rank-1 update along a known direction. "
             f"**{'PASSED' if pc.passed else 'NOT PASSED'}** "
             f"({len(pc.passed_by)} of {len(verdicts)} crosscoders). "
             f"Criterion: {pc.criterion or '|cos| > 0.9 and ablation removes calls beyond controls'}.", "",
             "| crosscoder | verdict | best latent (group) | its abs cosine | top-ranked latent | its abs cosine "
             "| planted shift at the decision token | top latent's part (share) |",
             "|---|---|---|---|---|---|---|---|"]
    for name, p in pc.crosscoders.items():
        top_cos = "n/a" if p.top_ranked_abs_cosine is None else f"{p.top_ranked_abs_cosine:.3f}"
        shift, share = p.planted_shift, p.captured_share
        part = "n/a" if shift is None else f"{shift:.2f} (n = {p.captured_n})"
        held = "n/a" if share is None else f"{p.top_latent_part:.2f} ({share:.0%})"
        lines.append(f"| {name} | {_pc_verdict(verdicts.get(name, {}))} | {p.best_latent} ({p.best_group}) | "
                     f"{p.best_abs_cosine:.3f} | {p.top_ranked_latent} | {top_cos} | {part} | {held} |")
    for line in pc.ablation:
        lines.append(f"- {line}")
    lines += ["", "The planted shift is the mean of (x_RL − x_base)·û over the decision tokens of the calibration "
              "rows (tool prompts and generic text); the top latent's part is f·(d·û), which is what ablating "
              "the latent removes there. Directional ablation removes the whole component along its decoder "
              "direction. Only the crosscoder kinds that passed are validated instruments for the main study: "
              f"{', '.join(pc.validated_kinds) or 'none'}."]
    return lines


def machine_description() -> str:
    """The CPU, its cores, Python and torch: what a reader needs to compare a run with theirs."""
    import os

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def render_report(results: Results, plots: dict[str, str], machine: str | None = None) -> str:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = machine or machine_description()
    parts = [
        "# tooldiff report", "",
        f"Generated {now} on {machine}. Layer {results.layer}, n = {results.n_test} test prompts per "
        f"condition (stratified by kind), seed {results.seed}. Features were ranked on the calibration "
        "split; everything below is measured on the disjoint test split. Strict = BFCL-AST correctness "
        "(no call is correct on no-call prompts); lenient = the paper's metric.", "",
        "## Models without intervention", "", *_models_table(results), "",
        "## The paper's table, our numbers beside it", "", *_paper_table(results), "",
        "## What held, what did not", "", *_findings(results), "",
        "## The paper's claims, judged", "", *claims_lines(results), "",
        "## What each splice costs the model (loss recovered)", "", *_splice_loss(results), "",
        "## Positive control", "", *_positive(results), "",
        "## Plots", "",
        *[f"![{name}]({file})" for name, file in plots.items()], "",
    ]
    return "\n".join(parts)
