"""Verdicts on the paper's claims (and ours), computed from the numbers by written rules.

A claim gets one of four verdicts (docs/claims.md states the rules; this module is them):

1. **not testable here (why)**: nothing was measured; or a claim about a latent when the
   positive control did not validate the instrument; or a claim that a model rises, made on a
   model with less room to rise than half of the paper's effect.
2. **not reproduced**: the effect holds at no more than half of the organism seeds. It holds at
   a seed when its 95 % CI excludes zero in the claimed direction AND it beats its control panel
   (random directions, unrelated latents: `experiment.analysis`).
3. **reproduced but no better than the rival or the null**: it holds at most seeds, but at most
   of those the difference-of-means rival at the same dose moves as far, or a null pair (where RL
   taught no tool use) shows the same sign beyond zero at half the size or more.
4. **reproduced**: it holds at most seeds and beats the rival and the null there. It is
   **robust** only if it holds at every seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

Verdict = Literal["reproduced", "reproduced but no better than the rival or the null", "not reproduced",
                  "not testable here"]
Needs = Literal["positive_control", "headroom"]


@dataclass(frozen=True)
class Claim:
    key: str
    text: str
    paper: str  # the paper's number, as it states it
    sign: int  # +1: the claim is an increase, -1: a decrease
    paper_effect: float = 0.0  # its size as a fraction (0.65 for +65 pp), for the headroom rule
    needs: tuple[Needs, ...] = ()


@dataclass(frozen=True)
class Measured:
    """One claim's effect at one organism seed (strict correctness, or the call rate)."""

    seed: int
    diff: float
    ci95: tuple[float, float]
    n: int
    beats_controls: bool
    rival_diff: Optional[float] = None  # difference-of-means rival at the same dose
    null_diff: Optional[float] = None  # the same condition on a null pair
    null_ci95: Optional[tuple[float, float]] = None

    def holds(self, sign: int) -> bool:
        lo, hi = self.ci95
        return (lo > 0 if sign > 0 else hi < 0) and self.beats_controls

    def matched_by_rival_or_null(self, sign: int) -> bool:
        rival = self.rival_diff is not None and sign * self.rival_diff >= sign * self.diff
        null = (self.null_diff is not None and self.null_ci95 is not None
                and (self.null_ci95[0] > 0 if sign > 0 else self.null_ci95[1] < 0)
                and sign * self.null_diff >= 0.5 * sign * self.diff)
        return rival or null


@dataclass(frozen=True)
class Context:
    positive_control_passed: Optional[bool] = None  # None: the control did not run
    baseline: Optional[float] = None  # strict correctness of the model the claim acts on


@dataclass(frozen=True)
class ClaimVerdict:
    claim: Claim
    verdict: Verdict
    reason: str
    holds_at: int = 0
    seeds: list[int] = field(default_factory=list)

    @property
    def robust(self) -> bool:
        return self.verdict == "reproduced" and self.holds_at == len(self.seeds)

    def label(self) -> str:
        if self.verdict == "not testable here":
            return f"not testable here ({self.reason})"
        return f"{self.verdict} ({self.holds_at} of {len(self.seeds)} organism seeds)"


def judge(claim: Claim, measured: list[Measured], context: Context) -> ClaimVerdict:
    """The verdict on `claim` from its per-seed measurements, by the module's rules."""
    untestable = _untestable(claim, measured, context)
    if untestable:
        return ClaimVerdict(claim, "not testable here", untestable, seeds=[m.seed for m in measured])
    seeds = [m.seed for m in measured]
    holding = [m for m in measured if m.holds(claim.sign)]
    if 2 * len(holding) <= len(measured):
        return ClaimVerdict(claim, "not reproduced", "its CI excludes zero beyond the controls at "
                            f"{len(holding)} of {len(measured)} seeds", len(holding), seeds)
    matched = [m for m in holding if m.matched_by_rival_or_null(claim.sign)]
    if 2 * len(matched) > len(holding):
        return ClaimVerdict(claim, "reproduced but no better than the rival or the null",
                            f"the rival or a null pair moves as far at {len(matched)} of the {len(holding)} seeds "
                            "where it holds", len(holding), seeds)
    return ClaimVerdict(claim, "reproduced", "beyond its controls, the rival and the nulls", len(holding), seeds)


def _untestable(claim: Claim, measured: list[Measured], context: Context) -> str:
    if not measured:
        return "not measured in this run"
    if "positive_control" in claim.needs and not context.positive_control_passed:
        state = "did not run" if context.positive_control_passed is None else "failed"
        return f"the positive control {state}, so the instrument is not validated"
    if "headroom" in claim.needs and context.baseline is not None and claim.sign > 0:
        room = 1 - context.baseline
        if room < claim.paper_effect / 2:
            return (f"the model is at {100 * context.baseline:.0f} % strict: {100 * room:.0f} pp of room for a "
                    f"claimed {100 * claim.paper_effect:+.0f} pp")
    return ""
