"""From a feature ranking to the latents and directions the experiment intervenes with."""

from __future__ import annotations

import torch

from tooldiff.experiment.conditions import A, Candidates
from tooldiff.features import CalibrationActs, diff_of_means, model_shift, random_directions
from tooldiff.features.rank import TOOL_KINDS


def _has_rl_weights(cc, latent: int) -> bool:
    span = cc.model_latents(A)
    return span.start <= latent < span.stop


def top_latents(cc, ranking: dict, contrast: str, n: int, pool: str = "a_excl") -> list[int]:
    """A-exclusive latents (with pool="rl_side" also the RL-dominant shared ones) ranked by the
    chosen contrast's d; a plain crosscoder has no A-exclusive latents, so its RL-side latents
    stand in (the paper steered plain crosscoders the same way)."""
    key = "paper_d" if contrast == "paper" and "paper_d" in ranking["latents"][0] else "strict_d"
    rows = [r for r in ranking["latents"] if r["group"] == "a_excl" or (pool == "rl_side" and r["rl_dominant"])]
    if not rows:
        rows = [r for r in ranking["latents"] if _has_rl_weights(cc, r["latent"])]
    rows = sorted(rows, key=lambda r: -r[key])
    return [r["latent"] for r in rows[:n]]


def unrelated_latents(cc, ranking: dict, n: int, exclude: list[int]) -> list[int]:
    """Least tool-related RL-side latents (|d| smallest under both contrasts) that do fire on
    tool prompts: a latent that never fires is no control for steering."""
    def relevance(r: dict) -> float:
        return abs(r["strict_d"]) + abs(r.get("paper_d", 0.0))

    rows = [r for r in ranking["latents"] if _has_rl_weights(cc, r["latent"]) and r["latent"] not in exclude
            and max(r["firing"]["call"], r["firing"]["not_offered"], r["firing"]["chitchat"]) > 0.05]
    return [r["latent"] for r in sorted(rows, key=relevance)[:n]]


@torch.no_grad()
def relative_sizes(cc, x_ND: torch.Tensor, latents: list[int]) -> dict[int, float]:
    """Mean ‖f_i d_i‖ / ‖h‖ over the rows, encoding from the RL model alone as interventions do."""
    f_NL = cc.encode_single(x_ND.float(), A)
    h_norm_N = x_ND.float().norm(dim=1).clamp_min(1e-6)
    return {i: float((f_NL[:, i] * cc.decoder_vector(i, A, raw=True).norm() / h_norm_N).mean()) for i in latents}


def build_candidates(cc, ranking: dict, acts: CalibrationActs, contrast: str, top_s: int,
                     n_unrelated: int, n_random: int, seed: int, pool: str = "a_excl") -> Candidates:
    tool_N = torch.tensor([k in TOOL_KINDS for k in acts.kinds])
    call_N = torch.tensor([k == "call" for k in acts.kinds])
    x_rl_ND = acts.x_NMD[:, A].float()
    top = top_latents(cc, ranking, contrast, top_s, pool)
    unrelated = unrelated_latents(cc, ranking, n_unrelated, exclude=top)
    dom = {"call_vs_nocall": diff_of_means(x_rl_ND[tool_N], call_N[tool_N]),
           "rl_minus_base": model_shift(acts.x_NMD, tool_N)}
    directions = {i: cc.decoder_vector(i, A, raw=True).detach().float() for i in top[:1] + unrelated}
    return Candidates(top=top, unrelated=unrelated, relative_size=relative_sizes(cc, x_rl_ND[tool_N], top + unrelated),
                      dom=dom, random_DR=random_directions(n_random, x_rl_ND.shape[1], 1.0, seed),
                      directions=directions)
