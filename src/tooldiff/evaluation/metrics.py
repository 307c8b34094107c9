"""Small metrics: the paper's lenient correctness, ASA trigger metrics, OTC productivity.

Undefined ratios (nothing to divide by) are reported as 0.0, as scikit-learn's
`zero_division=0` does, so that every metric stays a JSON number.
"""

from __future__ import annotations

from collections.abc import Sequence

from tooldiff.evaluation.schema import tool_names


def lenient_correct(calls: Sequence[dict], tools: Sequence[dict]) -> bool:
    """The paper's "tool correctness": some produced call names a tool offered in the prompt
    (neither the gold tool nor the arguments are checked)."""
    offered = set(tool_names(list(tools)))
    return any(call.get("name") in offered for call in calls)


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def trigger_metrics(made_call: Sequence[bool], needs_call: Sequence[bool]) -> dict[str, float]:
    """Precision, recall and F1 of "made a call" against "needs a call", and the false-positive
    rate: the share of prompts needing no call that got one."""
    if len(made_call) != len(needs_call):
        raise ValueError(f"made_call has {len(made_call)} items, needs_call {len(needs_call)}")
    pairs = list(zip(map(bool, made_call), map(bool, needs_call)))
    true_pos = sum(made and needed for made, needed in pairs)
    false_pos = sum(made and not needed for made, needed in pairs)
    false_neg = sum(needed and not made for made, needed in pairs)
    true_neg = sum(not made and not needed for made, needed in pairs)
    precision = _ratio(true_pos, true_pos + false_pos)
    recall = _ratio(true_pos, true_pos + false_neg)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1,
            "fpr": _ratio(false_pos, false_pos + true_neg)}


def tool_productivity(n_correct: int, n_calls: int) -> float:
    """OTC's tool productivity: correct answers per tool call (0.0 when no call was made)."""
    if n_correct < 0 or n_calls < 0:
        raise ValueError("counts must be non-negative")
    return _ratio(n_correct, n_calls)
