"""The ToolRL reward (Qian et al. 2025): a format score in {0, 1} and a correctness score in
[-3, 3].

correctness = 6 * score / S_max - 3, where
  score = name-Jaccard(gold names, produced names)
        + sum over gold calls of the best unused same-name produced call's
          (key-Jaccard + number of gold arguments it reproduces exactly),
  S_max = 1 + sum over gold calls of (1 + number of gold arguments).
The Jaccards count repeated names (multisets) and are 1 for two equal lists, so "no call
wanted, none made" scores +3 and "no call wanted, one made" scores -3. (ToolRL's own code gives
0 to prompts that need no call and leaves those to the format reward; we keep the formula.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from tooldiff.evaluation.ast_values import OMITTED

REWARD_MIN, REWARD_MAX = -3.0, 3.0


@dataclass(frozen=True)
class RewardResult:
    format: float
    correctness: float


def multiset_jaccard(left: Sequence, right: Sequence) -> float:
    """|L ∩ R| / |L ∪ R| over multisets; 1.0 when the two lists are equal (also both empty)."""
    if list(left) == list(right):
        return 1.0
    if not left or not right:
        return 0.0
    common = sum((Counter(left) & Counter(right)).values())
    return common / (len(left) + len(right) - common)


def gold_to_calls(gold: Sequence[dict]) -> list[dict]:
    """BFCL possible answers -> plain calls: each parameter takes its first accepted value, and
    a parameter whose first accepted value is "" (may be omitted) is left out."""
    calls = []
    for gold_call in gold:
        if isinstance(gold_call.get("name"), str):  # already a plain call
            calls.append({"name": gold_call["name"],
                          "arguments": dict(gold_call.get("arguments") or {})})
            continue
        (name, accepted), = gold_call.items()
        arguments = {param: values[0] for param, values in accepted.items()
                     if values and values[0] != OMITTED}
        calls.append({"name": name, "arguments": arguments})
    return calls


def _match_score(gold_arguments: dict, produced_arguments: dict) -> float:
    exact = sum(1.0 for key, value in gold_arguments.items()
                if key in produced_arguments and produced_arguments[key] == value)
    return multiset_jaccard(list(gold_arguments), list(produced_arguments)) + exact


def _correctness_score(calls: Sequence[dict], gold_calls: Sequence[dict]) -> tuple[float, float]:
    score = multiset_jaccard([g["name"] for g in gold_calls], [c["name"] for c in calls])
    best_possible = 1.0
    used: set[int] = set()
    for gold in gold_calls:
        best_possible += 1.0 + len(gold["arguments"])
        best_index, best = None, 0.0
        for index, call in enumerate(calls):
            if index in used or call["name"] != gold["name"]:
                continue
            candidate = _match_score(gold["arguments"], call["arguments"])
            if candidate > best:  # ToolRL takes only strictly positive matches
                best_index, best = index, candidate
        if best_index is not None:
            used.add(best_index)
            score += best
    return score, best_possible


def toolrl_reward(calls: Sequence[dict], gold_calls: Sequence[dict],
                  format_ok: bool) -> RewardResult:
    """Reward produced canonical calls against gold calls (plain `{"name", "arguments"}` dicts
    or BFCL possible answers, converted by `gold_to_calls`)."""
    gold_calls = gold_to_calls(gold_calls)
    calls = [{"name": c["name"], "arguments": c.get("arguments") or {}} for c in calls]
    if calls == gold_calls:
        correctness = REWARD_MAX
    else:
        score, best_possible = _correctness_score(calls, gold_calls)
        correctness = (REWARD_MAX - REWARD_MIN) * score / best_possible + REWARD_MIN
    return RewardResult(format=1.0 if format_ok else 0.0, correctness=correctness)
