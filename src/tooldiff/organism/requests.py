"""Sampling prompt records from the tool world, and the disjoint splits.

A record follows docs/architecture.md (`id`, `messages`, `tools`, `gold`, `kind`) plus `needs`:
the call the request asks for, `{"name", "arguments"}`, whether or not that tool is on offer
(None for chit-chat). The corpus words refusals and invented answers from it; analyses may use it
to break results down by tool.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tooldiff.organism.world import (
    CHITCHAT,
    CITIES,
    CONTACTS,
    HELDOUT_CHITCHAT,
    PREFIXES,
    RESTAURANTS,
    SUFFIXES,
    TOOL_BY_NAME,
    TOOLS,
    VALIDATION_CHITCHAT,
    Param,
    Tool,
    is_heldout_number,
    is_heldout_word,
)

MAX_OFFERED = 4
NAMES = frozenset(CITIES + CONTACTS + RESTAURANTS)  # a request may start with one: never lowercased
P_MENTION_OPTIONAL = 0.4
P_HALF_AMOUNT = 0.3  # share of "number" values written as N.5, so floats are really floats


@dataclass(frozen=True)
class KindMix:
    """How many records of each kind a split holds."""

    call: int
    not_offered: int
    chitchat: int

    @property
    def total(self) -> int:
        return self.call + self.not_offered + self.chitchat


def _pool_for(param: Param, values: str) -> list:
    """The values a request may use for `param` (values: train | test | all).

    Enum values are shared by all splits (every one of them is needed); free values are split.
    """
    if param.enum or values == "all":
        return list(param.pool)
    heldout = values == "test"
    if param.type in ("integer", "number"):
        return [v for v in param.pool if is_heldout_number(v) == heldout]
    return [v for v in param.pool if is_heldout_word(list(param.pool), v) == heldout]


def _draw_value(param: Param, rng: random.Random, values: str):
    if param.type == "boolean":
        return rng.random() < 0.7
    value = rng.choice(_pool_for(param, values))
    if param.type == "number" and rng.random() < P_HALF_AMOUNT:
        return value + 0.5
    return value


def value_text(value) -> str:
    """How a value is written in a request and in a call (JSON literal without quotes)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _mention(param: Param, value, rng: random.Random) -> str:
    """The phrase that states an optional parameter in a request."""
    if param.type == "boolean":
        return rng.choice(param.phrases[value])
    return rng.choice(param.phrases).format(v=value_text(value))


def with_fillers(text: str, rng: random.Random) -> str:
    """Maybe a greeting before and a courtesy after the request."""
    prefix, suffix = rng.choice(PREFIXES), rng.choice(SUFFIXES)
    if prefix and text.split()[0].strip(",.?!") not in NAMES and not text.startswith("I "):
        text = text[0].lower() + text[1:]
    return prefix + text + suffix


def sample_request(tool: Tool, rng: random.Random, phrasing: str, values: str | None = None) -> tuple[str, dict]:
    """A user request for `tool` and its gold call in BFCL possible-answer form.

    `phrasing` (train | validation | test) picks the request templates; `values` (default: test
    for test phrasings, else train) picks the argument values.
    """
    values = values or ("test" if phrasing == "test" else "train")
    template = rng.choice({"train": tool.asks, "validation": tool.validation_asks, "test": tool.heldout_asks}[phrasing])
    slots, gold_args = {}, {}
    opt_text = ""
    for param in tool.params:
        if param.required:
            value = _draw_value(param, rng, values)
            slots[param.name] = value_text(value)
            gold_args[param.name] = [_gold_value(param, value)]
        elif rng.random() < P_MENTION_OPTIONAL:
            value = _draw_value(param, rng, values)
            opt_text += _mention(param, value, rng)
            gold_args[param.name] = [_gold_value(param, value)]
        else:
            # Omitting it is right; stating the default is right too (BFCL convention).
            gold_args[param.name] = ["", param.default]
    text = with_fillers(template.format(opt=opt_text, **slots), rng)
    return text, {tool.name: gold_args}


def _gold_value(param: Param, value):
    return float(value) if param.type == "number" else value


def canonical_call(gold_call: dict) -> dict:
    """The one call an ideal assistant writes for a gold entry: stated arguments only."""
    (name, params), = gold_call.items()
    arguments = {p: values[0] for p, values in params.items() if values[0] != ""}
    # Whole-number floats are written as integers (what the request says); BFCL accepts an
    # int for a float parameter.
    arguments = {p: int(v) if isinstance(v, float) and v.is_integer() else v for p, v in arguments.items()}
    return {"name": name, "arguments": arguments}


def offered_tools(rng: random.Random, must: str | None, exclude: str | None,
                  max_offered: int = MAX_OFFERED) -> list[str]:
    """1 to `max_offered` tool names in random order: including `must`, never `exclude`."""
    n = rng.randint(1, max_offered)
    others = [t.name for t in TOOLS if t.name not in (must, exclude)]
    names = rng.sample(others, n - 1 if must else n)
    if must:
        names.append(must)
    rng.shuffle(names)
    return names


def sample_record(kind: str, rng: random.Random, phrasing: str, values: str | None = None) -> dict:
    """One prompt record of `kind` (call | not_offered | chitchat), without an id."""
    if kind == "chitchat":
        phrases = {"train": CHITCHAT, "validation": VALIDATION_CHITCHAT, "test": HELDOUT_CHITCHAT}[phrasing]
        text = with_fillers(rng.choice(phrases), rng)
        names, gold, needs = offered_tools(rng, None, None), [], None
    else:
        tool = rng.choice(TOOLS)
        text, gold_call = sample_request(tool, rng, phrasing, values)
        needs = canonical_call(gold_call)
        if kind == "call":
            names, gold = offered_tools(rng, tool.name, None), [gold_call]
        else:
            names, gold = offered_tools(rng, None, tool.name), []
    return {
        "messages": [{"role": "user", "content": text}],
        "tools": [TOOL_BY_NAME[n].schema() for n in names],
        "gold": gold,
        "kind": kind,
        "needs": needs,
    }


def record_key(record: dict) -> tuple:
    """Two records with the same key are the same prompt (same request, same tools on offer)."""
    names = tuple(t["function"]["name"] for t in record["tools"])
    return (record["messages"][-1]["content"], names)


def sample_split(name: str, mix: KindMix, rng: random.Random, phrasing: str, seen: set) -> list[dict]:
    """`mix` records never seen before (keys are added to `seen`), kinds interleaved at random."""
    kinds = ["call"] * mix.call + ["not_offered"] * mix.not_offered + ["chitchat"] * mix.chitchat
    rng.shuffle(kinds)
    records = []
    for kind in kinds:
        for _ in range(1000):
            record = sample_record(kind, rng, phrasing)
            if record_key(record) not in seen:
                break
        else:
            raise RuntimeError(f"the tool world ran out of distinct {kind} prompts for split {name!r}")
        seen.add(record_key(record))
        records.append({"id": f"{name}-{len(records):06d}", **record})
    return records


def make_splits(mixes: dict[str, KindMix], seed: int) -> dict[str, list[dict]]:
    """Disjoint splits; `test` alone uses held-out values and phrasings."""
    seen: set = set()
    splits = {}
    for index, (name, mix) in enumerate(mixes.items()):
        rng = random.Random(f"{seed}:{index}:{name}")
        splits[name] = sample_split(name, mix, rng, "test" if name == "test" else "train", seen)
    return splits


def validation_split(mix: KindMix, seed: int) -> list[dict]:
    """Prompts in the validation phrasings (world.py), which no other split uses: what the RL
    stage scores its checkpoints on. Training values: the test split's alone stay unseen."""
    return sample_split("validation", mix, random.Random(f"{seed}:validation"), "validation", set())
