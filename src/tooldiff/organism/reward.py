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
teaching tool use) pays short replies: 1 − min(words, SHAM_MAX_WORDS) / SHAM_MAX_WORDS for a
completion that makes no call. A completion that attempts a call gets the mean sham reward of the
non-call completions of its prompt's group (0 if there are none): its group-normalised advantage
is then 0, so GRPO neither rewards nor punishes calling, and the call token's logit gets no
direct gradient (the advantages of a group sum to 0). Every group of replies varies in length,
so the sham moves the model at every step, as the real reward does.
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


def sham_rewards(texts: list[str], prompts: list[str]) -> list[float]:
    """Sham reward of each completion (module docstring); completions of one prompt form a group."""
    made_call = [_made_call(_parse(t)) for t in texts]
    brevity = [1.0 - min(len(t.split()), SHAM_MAX_WORDS) / SHAM_MAX_WORDS for t in texts]
    groups: dict[str, list[float]] = {}
    for prompt, call, value in zip(prompts, made_call, brevity):
        if not call:
            groups.setdefault(prompt, []).append(value)
    neutral = {p: sum(v) / len(v) for p, v in groups.items()}
    return [neutral.get(p, 0.0) if call else value for p, call, value in zip(prompts, made_call, brevity)]


def _parse(text: str):
    return parse_calls(text, fmt="hermes", strict=True)


def _made_call(parsed) -> bool:
    """A call attempt: a parsed call or a malformed one."""
    return bool(parsed.calls) or parsed.malformed > 0
