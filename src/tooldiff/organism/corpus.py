"""The base model's pretraining corpus: chat transcripts, call logs and generic prose.

What makes the base a good RL subject (SPEC section 5):
- In chat transcripts the assistant almost never calls (`call_rate`, at most 10 % of the turns
  that need an offered tool); otherwise it answers with invented text. The base therefore rarely
  calls (greedy: 7 % of tool-needed test prompts in the default build), and a sampled group of 8
  completions often holds one call for GRPO to reward.
- Call logs show requests next to the JSON call, with the arguments copied from the request, and
  `none` when the needed tool is not on offer. They teach copying and the offered-tool check
  (learned only from logs that list one tool: PretrainConfig.one_tool_drill_steps) as latent
  capabilities, without ever showing the assistant calling (see `api_log` for their values).
- Generic prose gives every word and number of the world an embedding.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

from tooldiff.organism.chat import EOS_TURN, call_text, render_chat
from tooldiff.organism.prose import prose_document
from tooldiff.organism.requests import canonical_call, offered_tools, sample_record, sample_request
from tooldiff.organism.world import CHITCHAT_REPLIES, REFUSALS, TOOL_BY_NAME, TOOLS


@dataclass(frozen=True)
class CorpusMix:
    """Share of documents of each type, and how often a transcript's assistant calls."""

    transcript: float = 0.55
    api_log: float = 0.30
    prose: float = 0.15
    call_rate: float = 0.10  # correct calls among transcript turns whose needed tool is offered
    refusal_rate: float = 0.5  # refusals among not-offered turns (else invented text)
    log_entries: tuple[int, int] = (3, 6)  # requests per call log (min, max)
    log_call_share: float = 0.5  # logged tool requests whose tool is offered (the rest show `none`)
    log_chitchat_share: float = 0.15  # logged requests that need no tool
    log_max_offered: int = 4  # tools on a call log's list: 1 to this many
    # (tool name, weight) pairs: a log's list always holds one tool drawn by these weights, and its
    # calls pick among the listed tools by them. Empty: uniform. The extra drill weights the tools
    # whose forced calls are still wrong (build.py says why).
    log_focus: tuple[tuple[str, float], ...] = ()


def _invented_answer(record: dict, rng: random.Random) -> str:
    """What a base LM says instead of calling: a made-up result worded from the request."""
    needs = record["needs"]
    tool = TOOL_BY_NAME[needs["name"]]
    fill = {p.name: needs["arguments"].get(p.name, p.default) for p in tool.params}
    return rng.choice(tool.made_up).format(**fill)


def assistant_reply(record: dict, rng: random.Random, mix: CorpusMix) -> str:
    """The assistant turn of a pretraining transcript."""
    kind = record["kind"]
    if kind == "chitchat":
        return rng.choice(CHITCHAT_REPLIES)
    if kind == "call":
        if rng.random() < mix.call_rate:
            return call_text(record["needs"])
        return _invented_answer(record, rng)
    if rng.random() < mix.refusal_rate:
        return rng.choice(REFUSALS).format(task=TOOL_BY_NAME[record["needs"]["name"]].task)
    return _invented_answer(record, rng)


def transcript(record: dict, rng: random.Random, mix: CorpusMix) -> str:
    prompt = render_chat(record["messages"], record["tools"], add_generation_prompt=True)
    return prompt + assistant_reply(record, rng, mix) + EOS_TURN


def _log_request(names: list[str], rng: random.Random, mix: CorpusMix) -> tuple[str, str]:
    """One logged request against the tools `names` and what the log records: the call, or `none`."""
    if rng.random() < mix.log_chitchat_share:
        return sample_record("chitchat", rng, "train")["messages"][0]["content"], "none"
    offered = rng.random() < mix.log_call_share
    pool = [t for t in TOOLS if (t.name in names) == offered]  # 1-4 of 8 offered: never empty
    if offered and mix.log_focus:
        focus = dict(mix.log_focus)
        tool = rng.choices(pool, weights=[focus[t.name] for t in pool])[0]
    else:
        tool = rng.choice(pool)
    text, gold_call = sample_request(tool, rng, "train", values="all")
    return text, call_text(canonical_call(gold_call)) if tool.name in names else "none"


def api_log(rng: random.Random, mix: CorpusMix) -> str:
    """A call log: one tool list (the chat system turn), then several requests, each followed by a
    `log` turn that records the call it got (`none` when its tool is not on offer, or no tool is needed).

    The log is rendered with the chat template, so the tool list and the requests look exactly as
    in a prompt, and the decision follows a `log` turn header instead of the assistant's. Several
    decisions against one list make the membership check (is the needed tool offered?) a dense
    training signal; it is an in-context lookup that small models learn only after a plateau.

    Requests use training phrasings and argument values from the *whole* pools, test values
    included: the logs are the base's reading about the API, like the documentation a real LM has
    seen, and copying learned on only the training values did not transfer to unseen ones (forced
    calls 92 % right on training values, 17 % on held-out ones). No prompt of the
    pretrain/rl/calibration splits, no chat transcript and no RL prompt ever uses a test value.
    """
    focused = rng.choices(*zip(*mix.log_focus))[0] if mix.log_focus else None
    names = offered_tools(rng, focused, None, mix.log_max_offered)
    messages = []
    for _ in range(rng.randint(*mix.log_entries)):
        request, outcome = _log_request(names, rng, mix)
        messages += [{"role": "user", "content": request}, {"role": "log", "content": outcome}]
    return render_chat(messages, [TOOL_BY_NAME[n].schema() for n in names], add_generation_prompt=False)


def iter_documents(records: list[dict], mix: CorpusMix, seed: int, stream: str = "corpus"):
    """An endless, seeded stream of pretraining documents drawn from the pretrain split's records.

    A stream (rather than a list of a given size) makes the tokenizer's training documents an exact
    prefix of the corpus the base is trained on, whatever the corpus size.
    """
    rng = random.Random(f"{seed}:{stream}")
    weights = [mix.transcript, mix.api_log, mix.prose]
    while True:
        doc_type = rng.choices(("transcript", "api_log", "prose"), weights=weights)[0]
        if doc_type == "transcript":
            yield transcript(rng.choice(records), rng, mix)
        elif doc_type == "api_log":
            yield api_log(rng, mix)
        else:
            yield prose_document(rng)


def corpus_documents(records: list[dict], n_docs: int, mix: CorpusMix, seed: int) -> list[str]:
    """The first `n_docs` documents of the stream."""
    return list(itertools.islice(iter_documents(records, mix, seed), n_docs))
