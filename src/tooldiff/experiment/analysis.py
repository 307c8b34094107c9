"""Effects against `none`, against the control panel, and across the sweep.

The rule for "beats its control panel": the paired 95 % CI of the effect (condition minus
`none`, same prompts) excludes 0, and its bound nearest 0 lies beyond every control's point
effect in the same direction. A base that flips along random directions is no discovery.
"""

from __future__ import annotations

import statistics

from tooldiff.evaluation import paired_test
from tooldiff.prompts import REQUEST_KINDS



def per_kind_rates(entry: dict, kinds: list[str]) -> dict:
    """Strict correctness and call rate per request kind (the FPR split the issue asks for)."""
    out = {}
    for kind in REQUEST_KINDS:
        idx = [i for i, k in enumerate(kinds) if k == kind]
        if idx:
            out[kind] = {"n": len(idx),
                         "strict": sum(entry["valid"][i] for i in idx) / len(idx),
                         "call_rate": sum(entry["made_call"][i] for i in idx) / len(idx)}
    return out


def add_effects(results: dict[str, dict], kinds: list[str], seed: int, n_boot: int) -> None:
    """Attach `effect` (paired test vs `none` of the same model) and per-kind rates, in place."""
    none = {e["model"]: e for e in results.values() if e["intervention"] == "none"}
    for entry in results.values():
        entry["per_kind"] = per_kind_rates(entry, kinds)
        ref = none.get(entry["model"])
        if ref is None or entry is ref:
            continue
        entry["effect"] = {
            "strict": paired_test(entry["valid"], ref["valid"], n_boot=n_boot, seed=seed),
            "call_rate": paired_test(entry["made_call"], ref["made_call"], n_boot=n_boot, seed=seed),
        }


def _beats(effect: dict, control_diffs: list[float]) -> bool:
    lo, hi = effect["ci95"]
    if lo > 0:
        return not control_diffs or lo > max(control_diffs)
    if hi < 0:
        return not control_diffs or hi < min(control_diffs)
    return False


def add_verdicts(results: dict[str, dict]) -> None:
    """For each effect with controls: does it beat its panel (strict correctness and call rate)?"""
    for entry in results.values():
        if entry["role"] != "effect" or "effect" not in entry:
            continue
        controls = [results[k] for k in entry.get("controls", []) if k in results]
        entry["verdict"] = {
            metric: {"excludes_zero": entry["effect"][metric]["ci95"][0] > 0 or entry["effect"][metric]["ci95"][1] < 0,
                     "beats_controls": _beats(entry["effect"][metric], [c["effect"][metric]["diff"] for c in controls]),
                     "n_controls": len(controls),
                     "control_range": ([min(c["effect"][metric]["diff"] for c in controls),
                                        max(c["effect"][metric]["diff"] for c in controls)] if controls else None)}
            for metric in ("strict", "call_rate")
        }


def sweep_summary(results: dict[str, dict]) -> list[dict]:
    """Mean ± std across crosscoders of each effect's strict-correctness change, as the paper reports."""
    cells: dict[tuple, list[float]] = {}
    for e in results.values():
        if e["role"] == "effect" and "effect" in e:
            n = len(e["features"])
            feats = "-" if n == 0 else "top1" if n == 1 else f"top{n}"
            cell = (e["model"], e["intervention"], feats, e["alpha"], e["dose"])
            cells.setdefault(cell, []).append(e["effect"]["strict"]["diff"])
    rows = []
    for (model, intervention, feats, alpha, dose), diffs in sorted(cells.items(), key=str):
        rows.append({"model": model, "intervention": intervention, "features": feats, "alpha": alpha,
                     "dose": dose, "n_crosscoders": len(diffs), "mean_diff": statistics.fmean(diffs),
                     "std_diff": statistics.stdev(diffs) if len(diffs) > 1 else 0.0})
    return rows
