"""Rank crosscoder latents as tool-feature candidates, on the CALIBRATION split only.

Two contrasts at the decision position:
- paper:  tool prompts (any kind) vs generic text with no tool template;
- strict: should-call vs no-call prompts, both inside the tool template.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from tooldiff.features.latent_scaling import latent_scaling
from tooldiff.features.stats import auroc, cohens_d, firing_rate
from tooldiff.prompts import REQUEST_KINDS

GROUPS = ("a_excl", "shared", "b_excl", "shared_rl_dominant")
RL_DOMINANT_SHARE = 0.8  # share of a shared latent's decoder norm on the RL side (SPEC §5)
TOOL_KINDS = REQUEST_KINDS  # the tool-world prompts, not generic text


@dataclass
class CalibrationActs:
    """Decision-position activations of the calibration rows, models ordered (A=RL, B=base)."""

    x_NMD: torch.Tensor
    kinds: list[str]
    ids: list[str]
    contexts: list[str] = field(default_factory=list)


def decoder_matrix(crosscoder) -> torch.Tensor:
    """dec_MLD: every latent's decoder row per model in normalized space (zeros where absent)."""
    n_models, n_latents = crosscoder.n_models, crosscoder.dict_size
    return torch.stack([
        torch.stack([crosscoder.decoder_vector(i, m, raw=False) for i in range(n_latents)])
        for m in range(n_models)
    ])


def relative_norm_delta(dec_MLD: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Δ = ½((‖d_B‖−‖d_A‖)/max(‖d_A‖,‖d_B‖) + 1) (0 = RL only, 1 = base only) and the RL share."""
    norm_A, norm_B = dec_MLD[0].norm(dim=1), dec_MLD[1].norm(dim=1)
    delta_L = 0.5 * ((norm_B - norm_A) / torch.maximum(norm_A, norm_B).clamp_min(1e-12) + 1)
    rl_share_L = norm_A / (norm_A + norm_B).clamp_min(1e-12)
    return delta_L, rl_share_L


def _contrast_stats(f_NL: torch.Tensor, positive_N: torch.Tensor, rows_N: torch.Tensor) -> dict:
    f_sel, pos_sel = f_NL[rows_N], positive_N[rows_N]
    return {"d": cohens_d(f_sel, pos_sel), "auroc": auroc(f_sel, pos_sel)}


def _masks(kinds: list[str]) -> dict[str, torch.Tensor]:
    kind_N = kinds
    as_mask = lambda pred: torch.tensor([pred(k) for k in kind_N], dtype=torch.bool)  # noqa: E731
    return {
        "tool": as_mask(lambda k: k in TOOL_KINDS),
        "generic": as_mask(lambda k: k == "generic"),
        "call": as_mask(lambda k: k == "call"),
        **{k: as_mask(lambda kk, k=k: kk == k) for k in ("not_offered", "chitchat")},
    }


def _group_of(crosscoder, rl_share_L: torch.Tensor) -> list[list[str]]:
    groups = []
    for i in range(crosscoder.dict_size):
        g = crosscoder.latent_group(i)
        groups.append([g, "shared_rl_dominant"] if g == "shared" and rl_share_L[i] > RL_DOMINANT_SHARE else [g])
    return groups


def _best_per_group(score_L: torch.Tensor, groups: list[list[str]]) -> dict[str, int | None]:
    best: dict[str, int | None] = {}
    for g in GROUPS:
        members = [i for i, gs in enumerate(groups) if g in gs and torch.isfinite(score_L[i])]
        best[g] = max(members, key=lambda i: float(score_L[i])) if members else None
    return best


def _top_examples(f_NL: torch.Tensor, acts: CalibrationActs, latent: int, n: int) -> list[dict]:
    values, rows = f_NL[:, latent].topk(min(n, f_NL.shape[0]))
    return [
        {"id": acts.ids[r], "kind": acts.kinds[r], "activation": round(float(v), 4),
         "context": acts.contexts[r][-160:] if acts.contexts else ""}
        for v, r in zip(values.tolist(), rows.tolist()) if v > 0
    ]


@torch.no_grad()
def rank_features(crosscoder, acts: CalibrationActs, n_examples: int = 5) -> dict:
    """Per-latent statistics, the best latent of each group under each contrast, and examples.

    Latents are ranked by the strict contrast's AUROC distance from 0.5 in the direction of
    should-call (a latent that fires on should-call prompts), with the paper's contrast beside.
    """
    masks = _masks(acts.kinds)
    if int(masks["call"].sum()) < 2 or int((masks["tool"] & ~masks["call"]).sum()) < 2:
        raise ValueError("calibration data needs at least two should-call and two no-call tool prompts")
    x_NMD = acts.x_NMD.float()
    x_norm_NMD = torch.stack([crosscoder.normalize(x_NMD[:, m], m) for m in range(crosscoder.n_models)], 1)
    f_NL = crosscoder.encode(x_norm_NMD, normalized=True)
    xhat_norm_NMD = crosscoder.decode(f_NL, normalized=True)
    dec_MLD = decoder_matrix(crosscoder)
    delta_L, rl_share_L = relative_norm_delta(dec_MLD)
    strict = _contrast_stats(f_NL, masks["call"], masks["tool"])
    paper = (_contrast_stats(f_NL, masks["tool"], masks["tool"] | masks["generic"])
             if int(masks["generic"].sum()) >= 2 else None)
    scaling = latent_scaling(f_NL, x_norm_NMD, xhat_norm_NMD, dec_MLD)
    groups = _group_of(crosscoder, rl_share_L)
    rates = {k: firing_rate(f_NL, masks[k]) for k in ("call", "not_offered", "chitchat", "generic")}
    order = torch.argsort(strict["auroc"], descending=True).tolist()

    def row(i: int) -> dict:
        r = {"latent": i, "group": groups[i][0], "rl_dominant": "shared_rl_dominant" in groups[i],
             "delta": float(delta_L[i]), "rl_norm_share": float(rl_share_L[i]),
             "strict_d": float(strict["d"][i]), "strict_auroc": float(strict["auroc"][i]),
             "nu_eps": float(scaling["nu_eps"][i]), "nu_r": float(scaling["nu_r"][i]),
             "firing": {k: float(v[i]) for k, v in rates.items()}}
        if paper is not None:
            r.update(paper_d=float(paper["d"][i]), paper_auroc=float(paper["auroc"][i]))
        return r

    best = {"strict": _best_per_group(strict["auroc"], groups)}
    if paper is not None:
        best["paper"] = _best_per_group(paper["d"], groups)
    least = torch.argsort(strict["d"].abs()).tolist()
    return {
        "n": {k: int(v.sum()) for k, v in masks.items()},
        "latents": [row(i) for i in order],
        "best": best,
        "least_related": [i for i in least if rates["call"][i] > 0][:10] or least[:10],
        "examples": {str(i): _top_examples(f_NL, acts, i, n_examples)
                     for i in {i for b in best.values() for i in b.values() if i is not None}},
    }
