"""The pages' contents as JSON-able dicts: the index, one page per latent, the live panel.

Numbers are passed through as the results files hold them (no rounding), except per-token
activations and logits, which are display values (4 significant digits). The browser renders
everything (assets/dashboard.js); nothing here knows HTML.
"""

from __future__ import annotations

import re
from typing import Optional

from tooldiff.report.dashboard.analysis import KINDS, CrosscoderView, LatentView
from tooldiff.report.dashboard.data import Condition, CrosscoderRun, Run, Study

STUDIES = ("main", "positive")
TABLE_COLUMNS = ("study", "crosscoder", "latent", "rank", "group", "delta", "nu_eps", "nu_r", "strict_d",
                 "strict_auroc", "paper_d", "paper_auroc", "fire_call", "fire_not_offered", "fire_chitchat",
                 "fire_generic", "decoder_cos", "page")
EXAMPLE_PROMPTS_PER_KIND = 2


def page_name(study: str, crosscoder: str, latent: int) -> str:
    return f"latents/{study}-{re.sub(r'[^A-Za-z0-9_.-]', '_', crosscoder)}-{latent}.html"


def _sig(x: float) -> float:
    return float(f"{x:.4g}")


class Tokens:
    """Token ids as display strings, each decoded once."""

    def __init__(self, tokenizer):
        self.tokenizer, self.cache = tokenizer, {}

    def __call__(self, token_id: int) -> str:
        if token_id not in self.cache:
            self.cache[token_id] = self.tokenizer.decode([token_id])
        return self.cache[token_id]


# --- the index -------------------------------------------------------------------------------
def _train(cc: CrosscoderRun) -> dict:
    t = cc.train
    hist = lambda h: None if h is None else {"counts": h.counts, "edges": h.edges}  # noqa: E731
    return {"name": cc.name, "fve": t.fve, "l0": t.l0, "dead_frac": t.dead_frac, "partition": t.partition,
            "step": t.step, "delta_hist": hist(t.delta_hist), "shared_cosine_hist": hist(t.shared_cosine_hist),
            "history": [[h.get("step"), h.get("loss"), h.get("mse")] for h in t.history],
            "planted": None if cc.planted is None else vars(cc.planted)}


def table_rows(study_name: str, study: Study, views: dict[str, CrosscoderView], pages: set[str]) -> list[list]:
    rows = []
    for name, cc in study.crosscoders.items():
        cos = views[name].decoder_cos
        for r in cc.latents:
            page = page_name(study_name, name, r.latent)
            rows.append([study_name, name, r.latent, r.rank + 1, r.group + (" (RL-dominant)" if r.rl_dominant else ""),
                         r.delta, r.nu_eps, r.nu_r, r.strict_d, r.strict_auroc, r.paper_d, r.paper_auroc,
                         *[r.firing.get(k) for k in KINDS], cos[r.latent], page if page in pages else None])
    return rows


def _baselines(study: Study) -> list[dict]:
    return [{"model": m, **ref.metrics} for m in ("base", "rl") if (ref := study.reference(m)) is not None]


def _findings(run: Run) -> dict:
    f = run.findings
    claim = lambda c: None if c is None else {**vars(c), "features": list(c.features)}  # noqa: E731
    return {"single_latent_holds": f.single_latent_holds, "single_latent_tried": f.single_latent_tried,
            "winners": [claim(w) for w in f.winners], "largest": claim(f.largest), "transfer": f.transfer,
            "recon": f.recon, "positive": f.positive, "source": f.source}


def index_page(run: Run, views: dict[str, dict[str, CrosscoderView]], pages: set[str]) -> dict:
    s, studies = run.main, run.studies
    return {
        "page": "index", "experiment": str(s.paths.experiment), "layer": s.layer, "n_test": s.n_test, "seed": s.seed,
        "models": {"rl": str(s.rl_path), "base": str(s.base_path)}, "baselines": _baselines(s),
        "findings": _findings(run), "notes": run.notes,
        "crosscoders": {name: [_train(cc) for cc in st.crosscoders.values()] for name, st in studies.items()},
        "columns": list(TABLE_COLUMNS),
        "rows": [row for name, st in studies.items() for row in table_rows(name, st, views[name], pages)],
    }


# --- a latent's page -------------------------------------------------------------------------
def _effect(c: Condition, metric: str) -> Optional[list[float]]:
    e = c.effect.get(metric)
    return None if e is None else [e.diff, e.lo, e.hi]


def _panel_row(c: Condition, role: Optional[str] = None) -> dict:
    return {"key": c.key, "label": c.label, "role": role or c.role, "strict": _effect(c, "strict"),
            "call_rate": _effect(c, "call_rate"), "strict_mean": c.metrics["strict"]["mean"]}


def _generations(study: Study, c: Condition, requests: dict[str, str]) -> list[dict]:
    """The condition's stored example outputs beside the same model's `none` outputs on the same prompts."""
    ref = study.reference(c.model)
    without = {e.id: e.output for e in ref.examples} if ref else {}
    return [{"id": e.id, "request": requests.get(e.id, ""), "without": without.get(e.id), "with": e.output}
            for e in c.examples]


def _conditions(study: Study, cc: str, latent: int, requests: dict[str, str]) -> list[dict]:
    """Every condition that used the latent, each with its panel: controls and rivals (an effect),
    or the effects it controlled for (a control)."""
    out = []
    for c in study.conditions:
        if c.crosscoder != cc or latent not in c.features:
            continue
        panel = [_panel_row(c)]
        panel += [_panel_row(k) for key in c.controls if (k := study.condition(key))]
        panel += [_panel_row(r, "rival (difference of means)") for key in c.rivals if (r := study.condition(key))]
        served = [e for e in study.conditions if c.key in e.controls]
        panel += [_panel_row(e, "effect it controls for") for e in served]
        out.append({**_panel_row(c), "verdict": c.verdict, "per_kind": c.per_kind, "panel": panel,
                    "examples": _generations(study, c, requests)})
    return out


def _examples(view: LatentView, study: Study, tokens: Tokens, token_ids: list[list[int]]) -> list[dict]:
    bins = []
    for b in view.bins:
        items = []
        for ex in b.examples:
            p = study.prompts[ex.prompt]
            items.append({"id": p.id, "kind": p.kind, "split": p.split, "peak": _sig(ex.peak),
                          "tokens": [tokens(t) for t in token_ids[ex.prompt]],
                          "rl": [_sig(v) for v in ex.single_MT[0].tolist()],
                          "base": [_sig(v) for v in ex.single_MT[1].tolist()]})
        bins.append({"label": b.label, "lo": _sig(b.lo), "hi": _sig(b.hi), "n": b.n, "examples": items})
    return bins


def _lens(view: LatentView, tokens: Tokens) -> dict:
    return {model: {"source": lens.source, "promoted": [[tokens(t), _sig(v)] for t, v in lens.promoted],
                    "suppressed": [[tokens(t), _sig(v)] for t, v in lens.suppressed],
                    "hist": {"counts": lens.counts, "lo": _sig(lens.lo), "hi": _sig(lens.hi)}}
            for model, lens in view.lens.items()}


def latent_page(study: Study, study_name: str, cc: CrosscoderRun, view: CrosscoderView, latent: int,
                reasons: list[str], tokens: Tokens, token_ids: list[list[int]]) -> dict:
    """Everything about one latent; `token_ids` are the study's prompts' tokens."""
    lv = view.latents[latent]
    requests = {p.id: p.request for p in study.prompts if p.split == "test"}
    row = next(r for r in cc.latents if r.latent == latent)
    h = lv.histogram
    return {
        "page": "latent", "study": study_name, "crosscoder": cc.name, "latent": latent, "reasons": reasons,
        "stats": {**vars(row), "rank": row.rank + 1, "decoder_cos": view.decoder_cos[latent]}, "owned": lv.owned,
        "histogram": {"edges": [_sig(e) for e in h.edges], "counts": h.counts, "n": h.n, "active": h.active},
        "examples": _examples(lv, study, tokens, token_ids), "n_active_prompts": lv.n_active_prompts,
        "n_prompts": len(study.prompts), "lens": _lens(lv, tokens),
        "conditions": _conditions(study, cc.name, latent, requests),
    }


# --- the live panel ---------------------------------------------------------------------------
def live_page(run: Run) -> dict:
    """The live panel's starting points: example test prompts (messages and tools) of each kind."""
    examples, prompts = [], run.main.prompts
    for kind in KINDS[:3]:
        picked = [p for p in prompts if p.split == "test" and p.kind == kind][:EXAMPLE_PROMPTS_PER_KIND]
        picked = picked or [p for p in prompts if p.kind == kind][:EXAMPLE_PROMPTS_PER_KIND]
        examples += [{"id": p.id, "kind": p.kind, "messages": p.record["messages"], "tools": p.record.get("tools") or []}
                     for p in picked if "messages" in p.record]
    return {"page": "live", "crosscoders": sorted(run.main.crosscoders), "examples": examples}
