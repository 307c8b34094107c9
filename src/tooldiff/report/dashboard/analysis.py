"""What the dashboard computes from the models and crosscoders when it is written (CPU is enough).

Per crosscoder, for the latents that get a page (`page_latents`):
- the latent at every token of the calibration and test prompts, read from each model alone
  (interventions/tokens.py: the f that steering scales there), and from that the max-activating
  examples in bins of each prompt's peak in either model;
- its activation histogram at the decision position per request kind, on the calibration rows
  the ranking was computed on, encoded as the ranking encodes them (so its firing rates are the
  ranking's);
- the logit lens of its decoder vector in each model (one product for all the page latents).
For every latent: the cosine between its two decoders (shared latents only).

Both models run once over all prompts, up to layer L only; every crosscoder reads the same hidden
states (an experiment's crosscoders share one layer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch

from tooldiff.interventions.tokens import layer_hiddens, logit_lens, read_tokens
from tooldiff.report.dashboard.data import CrosscoderRun, Study
from tooldiff.prompts import REQUEST_KINDS

A, B = 0, 1  # crosscoder model index: A = RL, B = base
MODELS = ("rl", "base")
TOP_FEATURES = 20  # pages for the ranking's first 20 latents of each crosscoder
TOP_EXAMPLES, INTERVALS, PER_BIN = 6, 4, 3  # max-activating examples: the top, then per quarter of the peak range
HIST_BINS, LENS_BINS = 30, 40
KINDS = (*REQUEST_KINDS, "generic")


def page_latents(study: Study, cc: CrosscoderRun) -> dict[int, list[str]]:
    """The latents of `cc` that get a page, each with why: the ranking's top features, every latent
    an experiment condition intervened on (effects and unrelated controls), the planted one."""
    why: dict[int, list[str]] = {}
    for row in cc.latents[:TOP_FEATURES]:
        why.setdefault(row.latent, []).append(f"tool feature #{row.rank + 1} of the ranking")
    for c in study.conditions:
        if c.crosscoder != cc.name:
            continue
        for f in c.features:
            if isinstance(f, int):
                reason = "unrelated-latent control" if c.role == "control_unrelated" else "intervened on"
                if reason not in why.setdefault(f, []):
                    why[f].append(reason)
    if cc.planted is not None:
        why.setdefault(cc.planted.best_latent, []).append(
            f"closest to the planted direction (|cos| {cc.planted.best_abs_cosine:.3f})")
        if cc.planted.top_ranked_latent is not None and cc.planted.top_ranked_latent != cc.planted.best_latent:
            why.setdefault(cc.planted.top_ranked_latent, []).append("top-ranked latent of the positive control")
    return why


@dataclass
class Example:
    prompt: int  # index into the prompts
    peak: float  # the latent's maximum over the prompt's tokens, in either model
    single_MT: torch.Tensor  # the latent read from each model alone, per token


@dataclass
class ExampleBin:
    label: str
    lo: float
    hi: float
    n: int  # prompts whose peak falls in the bin
    examples: list[Example]


@dataclass
class KindHistogram:
    edges: list[float]
    counts: dict[str, list[int]]  # kind -> counts of active rows per bin
    n: dict[str, int]  # kind -> rows
    active: dict[str, int]  # kind -> rows where the latent fires (> 0)


@dataclass
class Lens:
    """One model's logit lens of one decoder vector: the top and bottom tokens, and the histogram
    of every logit (LENS_BINS equal bins from the lowest logit to the highest)."""

    source: str  # whose decoder vector went through it
    promoted: list[tuple[int, float]]
    suppressed: list[tuple[int, float]]
    counts: list[int]
    lo: float
    hi: float


@dataclass
class LatentView:
    latent: int
    bins: list[ExampleBin]
    n_active_prompts: int
    histogram: KindHistogram
    lens: dict[str, Lens]
    owned: dict[str, bool]  # model -> has an encoder for the latent


@dataclass
class CrosscoderView:
    decoder_cos: list[Optional[float]]
    latents: dict[int, LatentView] = field(default_factory=dict)


def decoder_cosines(crosscoder) -> list[Optional[float]]:
    """cos(d_A, d_B) per latent; None where a model has no decoder for it (exclusive latents)."""
    out: list[Optional[float]] = []
    span_a, span_b = crosscoder.model_latents(A), crosscoder.model_latents(B)
    for i in range(crosscoder.dict_size):
        if span_a.start <= i < span_a.stop and span_b.start <= i < span_b.stop:
            a, b = crosscoder.decoder_vector(i, A), crosscoder.decoder_vector(i, B)
            out.append(float(torch.nn.functional.cosine_similarity(a, b, dim=0)))
        else:
            out.append(None)
    return out


@dataclass
class Inputs:
    """What every crosscoder of a study reads: both models, the prompts' tokens and hidden states
    (every prompt's tokens one after the other: prompt p owns rows offsets[p]:offsets[p+1])."""

    models: dict[str, torch.nn.Module]
    tokenizer: object
    token_ids: list[list[int]]
    offsets: list[int]
    h_MND: list[torch.Tensor]
    calibration_x_NMD: torch.Tensor
    calibration_kinds: list[str]


def load_inputs(study: Study, device: str = "cpu") -> Inputs:
    """Load the study's models and read both at every token of its prompts."""
    from tooldiff.activations.records import tokenize_records
    from tooldiff.hf import load_model, load_tokenizer
    from tooldiff.report.dashboard.data import calibration_activations

    tokenizer = load_tokenizer(study.rl_path)
    models = {"rl": load_model(study.rl_path, device=device), "base": load_model(study.base_path, device=device)}
    records = [p.record for p in study.prompts]
    token_ids = [p.token_ids for p in tokenize_records(records, tokenizer, study.paths.experiment)]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    offsets = [0]
    for ids in token_ids:
        offsets.append(offsets[-1] + len(ids))
    h_MND = [torch.cat(layer_hiddens(models[m], study.layer, token_ids, pad)) for m in MODELS]
    acts = calibration_activations(study.paths.experiment)
    return Inputs(models, tokenizer, token_ids, offsets, h_MND, acts.x_NMD, acts.kinds)


@torch.no_grad()
def view_crosscoder(cc_run: CrosscoderRun, inputs: Inputs, latents: list[int]) -> CrosscoderView:
    from tooldiff.crosscoder import Crosscoder

    cc = Crosscoder.load(cc_run.directory)
    view = CrosscoderView(decoder_cosines(cc))
    f_MNS = torch.stack([read_tokens(cc, m, inputs.h_MND[m], latents) for m in range(len(MODELS))])
    lengths = [b - a for a, b in zip(inputs.offsets, inputs.offsets[1:])]
    peaks_PS = torch.stack([rows.amax(dim=(0, 1)) for rows in f_MNS.split(lengths, dim=1)])
    decision_NS = _decision_activations(cc, inputs.calibration_x_NMD)[:, latents]
    lenses = _lenses(cc, latents, inputs.models)
    for s, latent in enumerate(latents):
        view.latents[latent] = LatentView(
            latent, _example_bins(peaks_PS[:, s], f_MNS[:, :, s], inputs.offsets), int((peaks_PS[:, s] > 0).sum()),
            _kind_histogram(decision_NS[:, s], inputs.calibration_kinds), {m: lenses[m][s] for m in MODELS},
            {m: cc.model_latents(i).start <= latent < cc.model_latents(i).stop for i, m in enumerate(MODELS)})
    return view


def _decision_activations(cc, x_NMD: torch.Tensor) -> torch.Tensor:
    """f_NL at the decision position, normalized and encoded exactly as `features.rank_features` does."""
    x_NMD = x_NMD.float()
    x_norm_NMD = torch.stack([cc.normalize(x_NMD[:, m], m) for m in range(cc.n_models)], 1)
    return cc.encode(x_norm_NMD, normalized=True)


def _example_bins(peak_P: torch.Tensor, single_MN: torch.Tensor, offsets: list[int]) -> list[ExampleBin]:
    """The top examples, then one bin per quarter of the range of the prompts' peaks (as
    SAE-Dashboard's intervals: a latent that saturates on many prompts would leave quantile
    bins empty), a few evenly spaced examples from each; none shown twice."""
    peaks = peak_P.tolist()
    order = [p for p in sorted(range(len(peaks)), key=lambda p: -peaks[p]) if peaks[p] > 0]
    if not order:
        return []
    example = lambda p: Example(p, peaks[p], single_MN[:, offsets[p]:offsets[p + 1]].clone())  # noqa: E731
    top = order[:TOP_EXAMPLES]
    shown = set(top)
    bins = [ExampleBin("top activations", peaks[top[-1]], peaks[top[0]], len(top), [example(p) for p in top])]
    high = peaks[order[0]]
    for b in range(INTERVALS, 0, -1):
        lo, hi = high * (b - 1) / INTERVALS, high * b / INTERVALS
        members = [p for p in order if lo < peaks[p] <= hi]
        fresh = [p for p in members if p not in shown]
        picked = fresh[::max(1, len(fresh) // PER_BIN)][:PER_BIN]
        shown.update(picked)
        label = f"{100 * (b - 1) // INTERVALS}-{100 * b // INTERVALS} % of the top peak"
        bins.append(ExampleBin(label, lo, hi, len(members), [example(p) for p in picked]))
    return bins


def _kind_histogram(f_N: torch.Tensor, kinds: list[str]) -> KindHistogram:
    top = float(f_N.max()) if len(f_N) else 0.0
    edges = torch.linspace(0, top if top > 0 else 1.0, HIST_BINS + 1)
    counts, n, active = {}, {}, {}
    for kind in KINDS:
        rows = torch.tensor([k == kind for k in kinds], dtype=torch.bool)
        if not rows.any():
            continue
        values = f_N[rows]
        on = values[values > 0]
        counts[kind] = torch.histc(on, bins=HIST_BINS, min=0, max=float(edges[-1])).long().tolist() if len(on) else [0] * HIST_BINS
        n[kind], active[kind] = int(rows.sum()), int(len(on))
    return KindHistogram(edges.tolist(), counts, n, active)


def _lenses(cc, latents: list[int], models: dict) -> dict[str, list[Lens]]:
    """Each model's logit lens of each latent's decoder; a model without one reads the other's."""
    vectors = {name: torch.stack([cc.decoder_vector(i, m) for i in latents]) for m, name in enumerate(MODELS)}
    out = {}
    for name in MODELS:
        other = "base" if name == "rl" else "rl"
        own_S = vectors[name].abs().sum(1) > 0
        used_SD = torch.where(own_S[:, None], vectors[name], vectors[other])
        lens = logit_lens(models[name], used_SD)
        counts_SB, lo_S, hi_S = _row_histograms(lens.logits_SV, LENS_BINS)
        out[name] = [Lens(f"{name}'s decoder" if own else f"{other}'s decoder ({name} has none)", lens.promoted[s],
                          lens.suppressed[s], counts_SB[s].tolist(), float(lo_S[s]), float(hi_S[s]))
                     for s, own in enumerate(own_S.tolist())]
    return out


def _row_histograms(x_SV: torch.Tensor, bins: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row: counts in `bins` equal bins from the row's minimum to its maximum (the maximum in
    the last bin), in one pass for every row."""
    lo_S, hi_S = x_SV.min(1).values, x_SV.max(1).values
    width_S = ((hi_S - lo_S) / bins).clamp_min(1e-12)
    index_SV = ((x_SV - lo_S[:, None]) / width_S[:, None]).long().clamp(0, bins - 1)
    counts_SB = torch.zeros(x_SV.shape[0], bins, dtype=torch.long).scatter_add_(1, index_SV, torch.ones_like(index_SV))
    return counts_SB, lo_S, hi_S
