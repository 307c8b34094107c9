"""Crosscoder quality: FVE per model, L0, dead fraction, relative decoder norm Δ, shared cosine.

Computed with the exported `Crosscoder` (the dense reference path, inference-mode sparsity)
on held-out rows in RAW activation space, so the normalization round trip is exercised too.
Decoder norms and cosines use the normalized-space decoders (each model's activations
scaled to the same RMS), where the two models' norms are comparable.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tooldiff.crosscoder.model import Crosscoder

DELTA_BINS = 20
COSINE_BINS = 20
MARGINS = {"left": 0.12, "right": 0.97, "bottom": 0.16, "top": 0.9}


@torch.no_grad()
def reconstruction_metrics(cc: Crosscoder, x_NMD: torch.Tensor, batch_size: int = 4096) -> dict:
    M = cc.n_models
    sq_err = torch.zeros(M, dtype=torch.float64, device=x_NMD.device)
    fired = torch.zeros(cc.dict_size, dtype=torch.bool, device=x_NMD.device)
    l0_total = 0.0
    for start in range(0, x_NMD.shape[0], batch_size):
        x = x_NMD[start : start + batch_size].float()
        f = cc.encode(x)
        sq_err += (cc.decode(f) - x).pow(2).sum((0, 2)).double()
        active = f > 0
        l0_total += float(active.sum())
        fired |= active.any(0)
    centered = (x_NMD.double() - x_NMD.double().mean(0)).pow(2).sum((0, 2))
    fve = (1 - sq_err / centered.clamp_min(1e-12)).tolist()
    names = ["a", "b"] if M == 2 else [str(m) for m in range(M)]
    return {"fve": dict(zip(names, fve)), "l0": l0_total / max(x_NMD.shape[0], 1),
            "dead_frac_eval": float((~fired).float().mean()), "n_eval_rows": int(x_NMD.shape[0])}


def relative_norm_delta(cc: Crosscoder) -> torch.Tensor:
    """Δ_i = ½((‖d_B‖ − ‖d_A‖) / max(‖d_A‖, ‖d_B‖) + 1): 0 = only A, 1 = only B, ½ = equal."""
    norms = cc.decoder_norms_ML().detach()
    a, b = norms[0], norms[1]
    return 0.5 * ((b - a) / torch.maximum(a, b).clamp_min(1e-12) + 1)


def shared_cosine(cc: Crosscoder) -> torch.Tensor:
    """Cosine between A's and B's decoder rows of every shared latent."""
    s = cc.shared_latents
    a0, _ = cc.cfg.span(0)
    b0, _ = cc.cfg.span(1)
    dec_a = cc.W_dec_LD[0][s.start - a0 : s.stop - a0].detach()
    dec_b = cc.W_dec_LD[1][s.start - b0 : s.stop - b0].detach()
    return torch.nn.functional.cosine_similarity(dec_a, dec_b, dim=1)


def _histogram(values: torch.Tensor, bins: int, lo: float, hi: float) -> dict:
    counts = torch.histc(values.float(), bins=bins, min=lo, max=hi)
    return {"counts": [int(c) for c in counts], "edges": torch.linspace(lo, hi, bins + 1).tolist()}


def decoder_metrics(cc: Crosscoder) -> dict:
    if cc.n_models != 2:
        return {}
    delta = relative_norm_delta(cc)
    cos = shared_cosine(cc)
    shared_delta = delta[cc.shared_latents]
    return {
        "delta": {"hist": _histogram(delta, DELTA_BINS, 0.0, 1.0),
                  "shared_mean": float(shared_delta.mean()),
                  "shared_frac_below_0.1": float((shared_delta < 0.1).float().mean()),
                  "shared_frac_above_0.9": float((shared_delta > 0.9).float().mean())},
        "shared_cosine": {"hist": _histogram(cos, COSINE_BINS, -1.0, 1.0), "mean": float(cos.mean()),
                          "median": float(cos.median())},
        "partition": {"a_excl": cc.cfg.n_excl_a, "shared": cc.cfg.n_shared, "b_excl": cc.cfg.n_excl_b},
    }


def _bar_figure(path: Path, edges: torch.Tensor, stacks: dict[str, torch.Tensor], xlabel: str, title: str) -> None:
    # Object API, precomputed counts, one filled `stairs` artist per group and light PNG
    # compression: a sweep writes two of these per config, so they must be cheap.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5), dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    bottom = torch.zeros(len(edges) - 1)
    for label, counts in stacks.items():
        ax.stairs((bottom + counts).numpy(), edges.numpy(), baseline=bottom.numpy(), fill=True, label=label)
        bottom = bottom + counts
    ax.set(xlabel=xlabel, ylabel="latents", title=title)
    if len(stacks) > 1:
        ax.legend()
    fig.subplots_adjust(**MARGINS)
    fig.savefig(path, pil_kwargs={"compress_level": 1})


def write_histograms(cc: Crosscoder, directory: Path) -> list[Path]:
    """delta_hist.png (stacked by latent group) and shared_cosine_hist.png."""
    if cc.n_models != 2:
        return []
    delta = relative_norm_delta(cc)
    groups = {"A-excl": cc.a_latents, "shared": cc.shared_latents, "B-excl": cc.b_latents}
    delta_counts = {g: torch.histc(delta[s], bins=DELTA_BINS, min=0.0, max=1.0) for g, s in groups.items()}
    cos_counts = {"shared": torch.histc(shared_cosine(cc), bins=COSINE_BINS, min=-1.0, max=1.0)}
    paths = [directory / "delta_hist.png", directory / "shared_cosine_hist.png"]
    name = cc.cfg.display_name()
    _bar_figure(paths[0], torch.linspace(0, 1, DELTA_BINS + 1), delta_counts,
                "Δ relative decoder norm (0 = A/RL only, 1 = B/base only)", f"{name}: Δ")
    _bar_figure(paths[1], torch.linspace(-1, 1, COSINE_BINS + 1), cos_counts, "cosine(d_A, d_B) of shared latents",
                f"{name}: shared-latent decoder cosine")
    return paths
