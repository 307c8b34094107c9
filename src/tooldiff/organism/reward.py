"""The RL reward, built from the project's scorer (tooldiff.evaluation).

Prompt that needs no call (not offered, chit-chat): NO_CALL_CREDIT for making no call, 0 for
any call attempt. It equals the reward of a right, clean call. An earlier version paid half
(0.5), so that "calling pays" would be heard louder than "calling costs" while the base's calls
were mostly malformed; once the base copied arguments (JSON keys as single tokens), that
asymmetry made RL call everywhere. Scratch runs, seed 0, test n = 800, the same RL settings on
two 3-layer bases of the same recipe (4 and 2 heads; forced calls right 51 % and 67 %): with 0.5,
FPR on chit-chat 0.79 and strict on tool-needed prompts 0.28; with 1.0, 0.255 and 0.42.

Prompt that needs a call, a sum of three parts:
- DECISION_CREDIT for attempting a call at all, even a malformed one. Without it, a weak base
  whose calls are mostly malformed only ever hears "calling is bad" (from the no-call prompts)
  and RL drives its call rate to zero, as the first tiny builds did;
- FORMAT_CREDIT when the completion is well formed and nothing but call blocks (a call after
  some prose is read by the parser but is not the format we want);
- CORRECT_CREDIT when the calls pass the strict BFCL-AST check, else PARTIAL_SPAN times the
  ToolRL correctness share (right name, keys and values count).

Order on a call prompt: right and clean 1.0 > right after prose 0.8 > wrong but clean (at most
0.75) > malformed 0.3 > no call 0. On a no-call prompt calling is never rewarded.

The **sham** reward (`--variant sham`, a null twin for the study: RL that moves the model without
teaching tool use) pins the call decision to the base's and pays short replies. Before RL, the
base's greedy decision is read once per RL prompt (does its first reply token open a call?).
A completion whose decision differs from the base's earns 0. One that calls where the base calls
earns 1 (every such call alike: nothing about the call's content is rewarded). One that does not
call where the base does not earns 0.5 + 0.5 (1 − min(words, SHAM_MAX_WORDS) / SHAM_MAX_WORDS).
The reward's optimum is the base's own greedy decision, so greedy call rates should stay; GRPO
still moves the model at every step (reply length varies in every group, and sampled decisions
that stray from the greedy one are pushed back). Version 1 (calls neutral in the advantage,
2026-12-05) stopped calling altogether: raising short first words lowers every other first token,
`<tool_call>` included (docs/notes/2026-12-05-organism.md).
"""

from __future__ import annotations

from tooldiff.evaluation import check_ast, parse_calls, toolrl_reward
from tooldiff.evaluation.reward import REWARD_MAX, REWARD_MIN

NO_CALL_CREDIT = 1.0
DECISION_CREDIT = 0.3
FORMAT_CREDIT = 0.2
CORRECT_CREDIT = 0.5
PARTIAL_SPAN = 0.25


def organism_reward(text: str, gold: list[dict], tools: list[dict]) -> float:
    """Reward of one completion (hermes format) for a prompt with BFCL `gold` and `tools`."""
    parsed = _parse(text)
    made_call = _made_call(parsed)
    if not gold:
        return 0.0 if made_call else NO_CALL_CREDIT
    if not made_call:
        return 0.0
    if not parsed.ok:
        return DECISION_CREDIT
    reward = DECISION_CREDIT + (FORMAT_CREDIT if not parsed.text.strip() else 0.0)
    if check_ast(parsed.calls, gold, tools).valid:
        return reward + CORRECT_CREDIT
    correctness = toolrl_reward(parsed.calls, gold, format_ok=True).correctness
    return reward + PARTIAL_SPAN * (correctness - REWARD_MIN) / (REWARD_MAX - REWARD_MIN)


SHAM_MAX_WORDS = 40


def sham_rewards(texts: list[str], base_calls: list[bool]) -> list[float]:
    """Sham reward of each completion, given whether the base calls on its prompt (module docstring)."""
    rewards = []
    for text, base_call in zip(texts, base_calls, strict=True):
        call = _made_call(_parse(text))
        if call != base_call:
            rewards.append(0.0)
        elif call:
            rewards.append(1.0)
        else:
            rewards.append(0.5 + 0.5 * (1.0 - min(len(text.split()), SHAM_MAX_WORDS) / SHAM_MAX_WORDS))
    return rewards


def _parse(text: str):
    return parse_calls(text, fmt="hermes", strict=True)


def _made_call(parsed) -> bool:
    """A call attempt: a parsed call or a malformed one."""
    return bool(parsed.calls) or parsed.malformed > 0
