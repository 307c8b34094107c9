"""The report's pictures: dose-response with CI bands and control panels, and the Δ histogram."""

from __future__ import annotations

import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tooldiff.report.results import ReportCondition, Results  # noqa: E402


def _curve(conditions: list[ReportCondition], pick, x_key: str) -> tuple[list, list, list, list]:
    """Mean strict correctness (and mean CI bounds) across crosscoders at each x."""
    by_x: dict[float, list] = {}
    for c in conditions:
        if pick(c) and getattr(c, x_key) is not None:
            by_x.setdefault(getattr(c, x_key), []).append(c.metrics.strict)
    xs = sorted(by_x)
    mean = [statistics.fmean(m.mean for m in by_x[x]) for x in xs]
    lo = [statistics.fmean(m.ci95[0] for m in by_x[x]) for x in xs]
    hi = [statistics.fmean(m.ci95[1] for m in by_x[x]) for x in xs]
    return xs, mean, lo, hi


def _with(c: ReportCondition, **knobs) -> ReportCondition:
    return c.model_copy(update=knobs)


def _controls(conds: list[ReportCondition], op: str, knob: str) -> list[ReportCondition]:
    """The controls of every `op` effect, each at its effect's `knob` (alpha or dose)."""
    by_key = {c.key: c for c in conds}
    return [_with(by_key[k], **{knob: getattr(e, knob)}) for e in conds
            if e.role == "effect" and e.intervention == op for k in e.controls or []]


def _band(ax, xs, mean, lo, hi, label, color, style="-"):
    if xs:
        ax.plot(xs, mean, style, color=color, label=label, marker="o", ms=3)
        ax.fill_between(xs, lo, hi, color=color, alpha=0.15)


def _legend(ax) -> None:
    if ax.get_legend_handles_labels()[0]:  # a panel with no curve (no such conditions) has no legend
        ax.legend(fontsize=7)


def plot_dose_response(results: Results, path: Path) -> Path:
    conds = results.conditions
    none = {c.model: c.metrics.strict for c in conds if c.intervention == "none"}
    # alpha = 1 and dose = 0 are the unmodified model: every curve starts there
    anchors = [_with(c, alpha=1.0, dose=0.0) for c in conds if c.intervention == "none"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for n_feats, color in ((1, "tab:red"), (None, "tab:orange")):
        pick = lambda c, n=n_feats: c.model == "rl" and (c.intervention == "none" or (  # noqa: E731
            c.role == "effect" and c.intervention == "steer" and (len(c.features) == 1) == (n == 1)))
        _band(ax1, *_curve(conds + anchors, pick, "alpha"), "top-1 latent" if n_feats else "top-|S| latents", color)
    steer_controls = _controls(conds, "steer", "alpha")
    for role, color in (("control_random", "tab:gray"), ("control_unrelated", "tab:purple")):
        _band(ax1, *_curve(steer_controls, lambda c, r=role: c.role == r, "alpha"), role.replace("_", ": "),
              color, "--")
    if "rl" in none:
        ax1.axhline(none["rl"].mean, color="black", lw=0.8, label="RL, no intervention")
    ax1.set_xscale("log")
    ax1.set_xlabel("steering α (RL model, last prompt token)")
    ax1.set_ylabel("strict correctness (BFCL-AST)")
    _legend(ax1)
    pick_add = lambda c: c.model == "base" and (c.intervention == "none" or (  # noqa: E731
        c.role == "effect" and c.intervention == "add"))
    _band(ax2, *_curve(anchors + conds, pick_add, "dose"), "RL top latent direction", "tab:red")
    for label, color in (("dom:call_vs_nocall", "tab:green"), ("dom:rl_minus_base", "tab:olive")):
        _band(ax2, *_curve(conds, lambda c, lab=label: c.features == [lab], "dose"), label, color)
    add_controls = _controls(conds, "add", "dose")
    _band(ax2, *_curve(add_controls, lambda c: c.role == "control_random", "dose"), "random directions",
          "tab:gray", "--")
    if "base" in none:
        ax2.axhline(none["base"].mean, color="black", lw=0.8, label="base, no intervention")
    ax2.set_xlabel("relative dose c (added into the base)")
    _legend(ax2)
    fig.suptitle("Dose-response (mean over crosscoders; bands: mean 95% CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_delta_histogram(rankings: dict, path: Path) -> Path:
    """Δ of every latent, one step histogram per crosscoder (`rankings`: name -> FeatureRanking)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, ranking in rankings.items():
        ax.hist([r.delta for r in ranking.latents], bins=40, range=(0, 1), histtype="step", label=name)
    ax.set_xlabel("Δ relative decoder norm (0 = RL only, 1 = base only)")
    ax.set_ylabel("latents")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
