"""The RL reward, built from the project's scorer (tooldiff.evaluation).

- prompt needs no call (not offered, chit-chat): 1 for making no call, 0 for any call attempt;
- prompt needs a call: no call or a malformed block earns 0. Otherwise FORMAT_CREDIT if the
  completion is nothing but call blocks (a call that follows some prose is read by the parser but
  is not the format we want), plus CORRECT_CREDIT when the calls pass the strict BFCL-AST check,
  else PARTIAL_SPAN times the ToolRL correctness share (right name, keys, values).

Order: right and clean 1.0 > right after prose 0.8 > wrong (at most 0.7) > no call 0. On a prompt
that needs no call, calling is never rewarded, so the partial credit cannot teach calling
everywhere.
"""

from __future__ import annotations

from tooldiff.evaluation import check_ast, parse_calls, toolrl_reward
from tooldiff.evaluation.reward import REWARD_MAX, REWARD_MIN

FORMAT_CREDIT = 0.2
CORRECT_CREDIT = 0.8
PARTIAL_SPAN = 0.5  # a wrong call earns at most FORMAT_CREDIT + PARTIAL_SPAN < CORRECT_CREDIT


def organism_reward(text: str, gold: list[dict], tools: list[dict]) -> float:
    """Reward of one completion (hermes format) for a prompt with BFCL `gold` and `tools`."""
    parsed = parse_calls(text, fmt="hermes", strict=True)
    made_call = bool(parsed.calls) or parsed.malformed > 0
    if not gold:
        return 0.0 if made_call else 1.0
    if not made_call or not parsed.ok:
        return 0.0
    format_credit = FORMAT_CREDIT if not parsed.text.strip() else 0.0
    if check_ast(parsed.calls, gold, tools).valid:
        return format_credit + CORRECT_CREDIT
    correctness = toolrl_reward(parsed.calls, gold, format_ok=True).correctness
    share = (correctness - REWARD_MIN) / (REWARD_MAX - REWARD_MIN)
    return format_credit + PARTIAL_SPAN * share
