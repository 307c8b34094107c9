"""results.json exactly as SPEC §7 describes, plus the findings computed from the numbers."""

from __future__ import annotations

from tooldiff.experiment.positive import crosscoder_kind  # noqa: F401 - the report's name for it

CONDITION_KEYS = ("model", "intervention", "crosscoder", "features", "alpha", "dose", "positions", "role",
                  "controls", "rivals", "key", "metrics", "per_kind", "effect", "verdict")
SINGLE_LATENT_OPS = ("steer", "ablate", "ablate_direction", "negative_steer")


def _condition(entry: dict) -> dict:
    return {k: entry.get(k) for k in CONDITION_KEYS}


def single_latent_claim(conditions: list[dict]) -> dict:
    """Does some single latent's steering or ablation move strict correctness with a 95 % CI that
    excludes 0 and beyond its control panel? Answered from the numbers, whichever way."""
    tried = [c for c in conditions if c["role"] == "effect" and c["intervention"] in SINGLE_LATENT_OPS
             and len(c["features"]) == 1 and c.get("verdict")]
    winners = [c for c in tried if c["verdict"]["strict"]["beats_controls"]]
    best = max(tried, key=lambda c: abs(c["effect"]["strict"]["diff"]), default=None)
    none = {c["model"]: c for c in conditions if c["intervention"] == "none"}
    return {
        "holds": bool(winners),
        "n_tried": len(tried),
        "winners": [{k: c[k] for k in ("crosscoder", "intervention", "features", "alpha")} |
                    {"diff": c["effect"]["strict"]["diff"], "ci95": c["effect"]["strict"]["ci95"],
                     "call_rate_by_kind": _call_rates(none.get(c["model"]), c)} for c in winners],
        "largest": None if best is None else {k: best[k] for k in ("crosscoder", "intervention", "features", "alpha")} |
        {"diff": best["effect"]["strict"]["diff"], "ci95": best["effect"]["strict"]["ci95"],
         "control_range": best["verdict"]["strict"]["control_range"]},
    }


def _validated_claim(conditions: list[dict], positive: dict | None) -> dict | None:
    """The single-latent claim on the crosscoders whose kind passed the positive control only."""
    kinds = (positive or {}).get("validated_kinds") or []
    if not kinds:
        return None
    mine = [c for c in conditions if c["crosscoder"] is None or crosscoder_kind(c["crosscoder"]) in kinds]
    return {"kinds": kinds, "crosscoders": sorted({c["crosscoder"] for c in mine if c["crosscoder"]}),
            **single_latent_claim(mine)}


def _call_rates(none: dict | None, condition: dict) -> dict:
    """Call rate per request kind, [without intervention, with it]: where a strict effect comes from
    (more right calls, or calls where none belong)."""
    before, after = (none or {}).get("per_kind") or {}, condition.get("per_kind") or {}
    return {k: [before[k]["call_rate"], after[k]["call_rate"]] for k in after if k in before}


def dfc_vs_dom(conditions: list[dict]) -> list[dict]:
    """Each base 'add' of a crosscoder direction beside the difference-of-means rivals at that dose."""
    by_key = {c["key"]: c for c in conditions}
    rows = []
    for eff in conditions:
        for c in [by_key[k] for k in eff.get("rivals") or [] if k in by_key]:
            rows.append({"crosscoder": eff["crosscoder"], "dose": eff["dose"], "latent": eff["features"][0],
                         "latent_strict": eff["metrics"]["strict"]["mean"],
                         "latent_call_rate_diff": eff["effect"]["call_rate"]["diff"],
                         "rival": c["features"][0], "rival_strict": c["metrics"]["strict"]["mean"],
                         "rival_call_rate_diff": c["effect"]["call_rate"]["diff"]})
    return rows


def recon_artifact(conditions: list[dict]) -> list[dict]:
    """Matched vs mismatched normalization for the reconstruction splice (the paper's weak point 2)."""
    rows = []
    for c in conditions:
        if c["intervention"] in ("reconstruct", "reconstruct_mismatched"):
            rows.append({"crosscoder": c["crosscoder"], "model": c["model"], "normalization":
                         "mismatched" if c["intervention"].endswith("mismatched") else "matched",
                         "strict": c["metrics"]["strict"], "diff": c["effect"]["strict"]["diff"],
                         "ci95": c["effect"]["strict"]["ci95"]})
    return rows


def build_results(experiment: dict, organism_info: dict | None = None, positive: dict | None = None) -> dict:
    conditions = [_condition(e) for e in experiment["conditions"]]
    none = {c["model"]: c["metrics"] for c in conditions if c["intervention"] == "none"}
    features = {name: {"best": r["best"], "n": r["n"], "top": r["latents"][:10], "least_related": r["least_related"]}
                for name, r in experiment["rankings"].items()}
    return {
        "models": {"base": none.get("base"), "rl": none.get("rl")},
        "conditions": conditions,
        "features": features,
        "crosscoders": experiment["crosscoders"],
        "sweep": experiment["sweep"],
        "findings": {"single_latent": single_latent_claim(conditions), "dfc_vs_dom": dfc_vs_dom(conditions),
                     "recon_artifact": recon_artifact(conditions),
                     "single_latent_validated": _validated_claim(conditions, positive)},
        "positive_control": positive,
        "layer": experiment["layer"],
        "n_test": experiment["n_test"],
        "seed": experiment["config"]["seed"],
        "organism": organism_info,
    }
