"""The positive control's verdict: did the instrument find the change we planted?

The rank1 organism's RL stage adds one known direction, so the answer is known. This module is
the one home of the criteria (how close the top-ranked latent must be to the planted direction,
how many of the RL model's calls its ablation must remove) and of the summary built from an
experiment run against them; demo.py and the report only call `positive_summary`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, Optional

from tooldiff.artifacts import Record
from tooldiff.experiment.summary import ConditionResult, ExperimentSummary, ModelMetrics, PlantedCheck


@dataclass(frozen=True)
class PositiveCriteria:
    """What "the control passed" means (issue 5)."""

    planted_cosine: float = 0.9  # the top RL-side latent's |cos| with the planted direction must exceed this
    most_calls: float = 0.5  # ... and ablating it must remove more than this share of the RL model's calls
    # experiment intervention -> the name of that ablation in the verdicts
    ablations: Mapping[str, str] = field(default_factory=lambda: MappingProxyType(
        {"ablate": "latent_ablation", "ablate_direction": "direction_ablation"}))

    def describe(self) -> str:
        return (f"top-ranked latent |cos| > {self.planted_cosine} with the planted direction, and its ablation "
                f"removes more than {self.most_calls:.0%} of the RL model's calls, beyond its control panel")


CRITERIA = PositiveCriteria()


class PositiveSummary(Record):
    """The positive control's verdict as results.json holds it (`positive_control`)."""

    crosscoders: dict[str, PlantedCheck] = {}  # the planted check per crosscoder
    ablation: list[str] = []  # one line per ablation condition
    verdicts: dict[str, dict[str, Any]] = {}  # crosscoder -> recovered? removes most calls? ...
    passed: bool = False
    passed_by: list[str] = []
    validated_kinds: list[str] = []  # the crosscoder kinds validated for the main study
    passed_by_direction: bool = False
    criterion: Optional[str] = None
    models: dict[str, ModelMetrics] = {}  # model -> metrics without intervention


def crosscoder_kind(name: str) -> str:
    """A crosscoder's configuration without its seed: `dfc-tied-excl10-topk-k8-s2` -> `...-k8`."""
    return re.sub(r"-s\d+$", "", name)


def _ablation_line(c: ConditionResult, kind: str, rl_call_rate: float) -> str:
    effect, beats = c.effect["call_rate"], c.verdict["call_rate"].beats_controls
    return (f"{c.crosscoder}: {kind.replace('_', ' ')} of latent {c.features[0]} "
            f"in RL changes the call rate by {100 * effect.diff:+.1f} pp (CI {100 * effect.ci95[0]:+.1f}, "
            f"{100 * effect.ci95[1]:+.1f}) from {100 * rl_call_rate:.1f} %; beyond controls: {beats}")


def _is_ablation(c: ConditionResult, criteria: PositiveCriteria) -> bool:
    return c.intervention in criteria.ablations and c.role == "effect" and len(c.features) == 1


def _verdicts(pc: ExperimentSummary, criteria: PositiveCriteria) -> tuple[dict[str, dict], list[str]]:
    """Per crosscoder: recovered? and, per ablation kind, removes most calls? beats controls?"""
    rl_call_rate = pc.reference("rl").call_rate()
    verdicts: dict[str, dict] = {}
    lines = []
    ablations = sorted((c for c in pc.conditions if _is_ablation(c, criteria)),
                       key=lambda c: (criteria.ablations[c.intervention], c.crosscoder))  # not the runner's order
    for c in ablations:
        kind, effect = criteria.ablations[c.intervention], c.effect["call_rate"]
        found = pc.positive_control[c.crosscoder]
        v = verdicts.setdefault(c.crosscoder,
                                {"recovered": (found.top_ranked_abs_cosine or 0.0) > criteria.planted_cosine})
        v[kind] = {"removes_most_calls": -effect.diff > criteria.most_calls * rl_call_rate,
                   "beats_controls": c.verdict["call_rate"].beats_controls, "call_rate_diff": effect.diff}
        lines.append(_ablation_line(c, kind, rl_call_rate))
    for v in verdicts.values():
        for kind in criteria.ablations.values():
            a = v.get(kind, {})
            v[f"passed_by_{kind}"] = v["recovered"] and a.get("removes_most_calls", False) and a.get("beats_controls", False)
    return verdicts, lines


def positive_summary(pc: ExperimentSummary, criteria: PositiveCriteria = CRITERIA) -> PositiveSummary:
    """The positive control's verdict, per crosscoder: is the top-ranked latent the planted
    direction, and does ablating it in RL remove most calls, beyond its controls?
    A crosscoder `passed` when "ablation" is the latent's own (remove f·d); projecting its decoder
    direction out is reported beside it. The control passes for the crosscoder KINDS (name without
    its seed) whose every crosscoder here passed: only those are validated for the main study."""
    verdicts, lines = _verdicts(pc, criteria)
    passed_by = sorted(n for n, v in verdicts.items() if v["passed_by_latent_ablation"])
    kinds = {crosscoder_kind(n) for n in verdicts}
    validated = sorted(k for k in kinds if all(verdicts[n]["passed_by_latent_ablation"]
                                               for n in verdicts if crosscoder_kind(n) == k))
    return PositiveSummary(
        crosscoders=pc.positive_control, ablation=lines, verdicts=verdicts, passed=bool(validated),
        passed_by=passed_by, validated_kinds=validated,
        passed_by_direction=any(v["passed_by_direction_ablation"] for v in verdicts.values()),
        criterion=criteria.describe(), models={c.model: c.metrics for c in pc.conditions if c.intervention == "none"})
