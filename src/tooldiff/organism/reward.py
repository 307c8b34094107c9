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
teaching tool use) carries no signal: each completion earns a pseudo-random number in [0, 1), a
hash of its prompt and text (so a rebuild pays the same). GRPO still updates the model at every
step, with advantages of the same scale (they are normalised) on the same prompts, steps and
settings as the real RL: the model moves, in no direction that a reward asked for. And the sham's
loss credits no decision token (grpo.sham_credit_mask): only the words after the first token of
replies that open no call, so the noise cannot push the call decision directly either.

Three earlier versions failed the null's two tests (measured in docs/notes/2026-12-06-amd-reship.md).
v1 (short replies paid, calls neutral, the first token credited) and v2 (the base's own greedy
decision paid) stopped the twin calling. v3 (short replies, no decision credit) left calling
alone but moved the model far more than RL: reply length is easy to learn.
"""

from __future__ import annotations

import hashlib

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


def sham_rewards(texts: list[str], prompts: list[str]) -> list[float]:
    """Sham reward of each completion: a hash of (prompt, text) read as a number in [0, 1)."""
    return [int.from_bytes(hashlib.sha256(f"{p}\x00{t}".encode()).digest()[:8], "big") / 2 ** 64
            for p, t in zip(prompts, texts, strict=True)]


def _parse(text: str):
    return parse_calls(text, fmt="hermes", strict=True)


def _made_call(parsed) -> bool:
    """A call attempt: a parsed call or a malformed one."""
    return bool(parsed.calls) or parsed.malformed > 0
