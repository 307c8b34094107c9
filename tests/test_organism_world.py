"""The organism's tool world, splits, chat format and RL reward (no model training here)."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import pytest
import torch

from tooldiff.evaluation import check_ast, parse_calls
from tooldiff.organism.chat import CALL_OPEN, call_text, render_chat
from tooldiff.organism.corpus import CorpusMix, assistant_reply, corpus_documents
from tooldiff.organism.grpo import credit_mask, resample_kinds
from tooldiff.organism.requests import KindMix, canonical_call, make_splits, record_key
from tooldiff.organism.reward import organism_reward
from tooldiff.organism.world import TOOLS, is_heldout_number, is_heldout_word

MIXES = {
    "test": KindMix(60, 30, 30),
    "calibration": KindMix(40, 20, 20),
    "rl": KindMix(100, 60, 40),
    "pretrain": KindMix(200, 100, 100),
}


@pytest.fixture(scope="module")
def splits():
    return make_splits(MIXES, seed=0)


def test_tools_cover_types_and_optionality():
    assert len(TOOLS) >= 6
    schemas = [t.schema()["function"] for t in TOOLS]
    types = {p["type"] for s in schemas for p in s["parameters"]["properties"].values()}
    assert {"string", "integer", "number", "boolean"} <= types
    assert any("enum" in p for s in schemas for p in s["parameters"]["properties"].values())
    assert all(s["parameters"]["required"] for s in schemas)
    assert any(len(s["parameters"]["required"]) < len(s["parameters"]["properties"]) for s in schemas)


def test_split_sizes_kinds_and_tools_on_offer(splits):
    for name, mix in MIXES.items():
        records = splits[name]
        kinds = [r["kind"] for r in records]
        assert (kinds.count("call"), kinds.count("not_offered"), kinds.count("chitchat")) == (
            mix.call, mix.not_offered, mix.chitchat)
        for r in records:
            offered = [t["function"]["name"] for t in r["tools"]]
            assert 1 <= len(offered) <= 4 and len(set(offered)) == len(offered)
            if r["kind"] == "call":
                assert r["needs"]["name"] in offered and len(r["gold"]) == 1
            elif r["kind"] == "not_offered":
                assert r["needs"]["name"] not in offered and r["gold"] == []
            else:
                assert r["needs"] is None and r["gold"] == []


def test_splits_are_disjoint(splits):
    keys = {name: {record_key(r) for r in records} for name, records in splits.items()}
    names = list(keys)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not keys[a] & keys[b], (a, b)


def _free_values(record):
    """Argument values of free (non-enum, non-boolean) parameters a request states."""
    tool = next(t for t in TOOLS if t.name == record["needs"]["name"])
    free = {p.name: p for p in tool.params if not p.enum and p.type != "boolean"}
    return [(free[k], v) for k, v in record["needs"]["arguments"].items() if k in free]


def test_test_split_holds_out_values_and_phrasings(splits):
    def heldout(param, value):
        if param.type in ("integer", "number"):
            return is_heldout_number(int(value))
        return is_heldout_word(list(param.pool), value)

    for name, records in splits.items():
        tool_records = [r for r in records if r["needs"]]
        assert tool_records
        for r in tool_records:
            assert all(heldout(p, v) == (name == "test") for p, v in _free_values(r)), r
    train_texts = {r["messages"][0]["content"] for n in ("pretrain", "rl", "calibration") for r in splits[n]}
    chit = [r for r in splits["test"] if r["kind"] == "chitchat"]
    assert all(r["messages"][0]["content"] not in train_texts for r in chit)


def test_validation_prompts_use_phrasings_no_split_uses(splits):
    """The RL checkpoint is chosen on phrasings that neither training nor the test split has,
    with training values: new to the twin like the test's, yet not the test's."""
    from tooldiff.organism.requests import validation_split

    validation = validation_split(KindMix(40, 20, 20), seed=0)
    assert [r["kind"] for r in validation].count("call") == 40 and validation == validation_split(
        KindMix(40, 20, 20), seed=0)
    keys = {record_key(r) for r in validation}
    assert len(keys) == len(validation) and all(not keys & {record_key(r) for r in rs} for rs in splits.values())
    texts = {r["messages"][0]["content"] for rs in splits.values() for r in rs}
    assert not texts & {r["messages"][0]["content"] for r in validation}
    for tool in TOOLS:
        assert not set(tool.validation_asks) & (set(tool.asks) | set(tool.heldout_asks)), tool.name
    assert all(not is_heldout_number(int(v)) if p.type in ("integer", "number") else
               not is_heldout_word(list(p.pool), v) for r in validation if r["needs"] for p, v in _free_values(r))


def test_string_arguments_are_written_in_the_request(splits):
    """Copying is learnable only if the gold value is in the request as the same token: a filler
    before "{city} weather" once lowercased the city ("Hi! berlin weather")."""
    for records in splits.values():
        for r in (r for r in records if r["kind"] == "call"):
            text = r["messages"][0]["content"]
            for values in next(iter(r["gold"][0].values())).values():
                if "" not in values and isinstance(values[0], str):  # "": an optional one left out
                    assert values[0] in text, (text, values)


def test_splits_depend_on_seed_only():
    assert make_splits(MIXES, seed=3) == make_splits(MIXES, seed=3)
    assert make_splits(MIXES, seed=3)["rl"] != make_splits(MIXES, seed=4)["rl"]


def test_canonical_call_passes_the_strict_checker(splits):
    for r in (r for r in splits["test"] + splits["rl"] if r["kind"] == "call"):
        assert canonical_call(r["gold"][0]) == r["needs"]
        parsed = parse_calls(call_text(r["needs"]), fmt="hermes", strict=True)
        assert parsed.ok and parsed.calls == [r["needs"]]
        assert check_ast(parsed.calls, r["gold"], r["tools"]).valid, r


def test_reward_from_the_scorer(splits):
    call = next(r for r in splits["rl"] if r["kind"] == "call")
    no_call = next(r for r in splits["rl"] if r["kind"] == "not_offered")
    right = call_text(call["needs"])
    first_param = next(iter(call["needs"]["arguments"]))
    wrong_args = dict(call["needs"], arguments={**call["needs"]["arguments"], first_param: "Nowhere"})
    wrong_name = {"name": "no_such_tool", "arguments": {}}
    assert organism_reward(right, call["gold"], call["tools"]) == 1.0
    assert organism_reward("Sure.\n" + right, call["gold"], call["tools"]) == pytest.approx(0.8)
    partial = organism_reward(call_text(wrong_args), call["gold"], call["tools"])
    hopeless = organism_reward(call_text(wrong_name), call["gold"], call["tools"])
    malformed = organism_reward(CALL_OPEN + "\n{not json\n</tool_call>", call["gold"], call["tools"])
    assert 0 < malformed < hopeless < partial < 0.8
    assert organism_reward("Sunny all day.", call["gold"], call["tools"]) == 0.0
    assert organism_reward("Sorry, I cannot.", no_call["gold"], no_call["tools"]) == 1.0  # = a right call
    assert organism_reward(right, no_call["gold"], no_call["tools"]) == 0.0
    assert organism_reward("Well.\n" + right, no_call["gold"], no_call["tools"]) == 0.0
    assert organism_reward(CALL_OPEN + "\n{not json", no_call["gold"], no_call["tools"]) == 0.0


def test_the_sham_reward_is_noise_that_a_rebuild_repeats():
    """Uniform-looking values in [0, 1), the same for the same prompt and text, blind to calls."""
    from tooldiff.organism.reward import sham_rewards

    call = '<tool_call>\n{"name":"get_weather","arguments":{"city":"Paris"}}\n</tool_call>'
    texts = [f"Reply number {i}." for i in range(2000)]
    r = sham_rewards(texts, ["p"] * len(texts))
    assert all(0 <= x < 1 for x in r) and abs(sum(r) / len(r) - 0.5) < 0.03
    assert sham_rewards(texts[:3], ["p"] * 3) == r[:3] and sham_rewards(texts[:1], ["q"]) != r[:1]
    assert sham_rewards([call], ["p"]) == sham_rewards([call], ["p"]) and 0 <= sham_rewards([call], ["p"])[0] < 1


def test_the_sham_credits_no_decision_token_and_no_call():
    from tooldiff.organism.grpo import sham_credit_mask

    tag = 7
    completion_BT = torch.tensor([[1, 2, 3, 0], [tag, 2, 3, 4], [1, 2, tag, 4]])
    live_BT = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1]])
    mask_BT = sham_credit_mask(completion_BT, live_BT, tag)
    assert mask_BT.tolist() == [[0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]


def test_credit_mask_keeps_decision_tokens_and_needed_calls():
    tag = 7
    completion_BT = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]])
    ids_BT = torch.tensor([[3, 4, 5, 0], [7, 4, 5, 6], [3, 4, 7, 7], [3, 4, 7, 5], [3, 7, 5, 6]])
    mask = credit_mask([False, True, False, False, True], ids_BT, completion_BT, tag)
    assert mask.tolist() == [
        [1, 0, 0, 0],  # no call needed, none made: the decision only
        [1, 1, 1, 1],  # call needed and made: everything
        [1, 0, 0, 0],  # the tag sits in padding, after the end: not a call
        [1, 0, 1, 0],  # call made where none was needed: the decisions, not the arguments
        [1, 1, 1, 1],  # call needed, opened after a word: everything
    ]


def test_chat_rendering_lists_offered_tools(splits):
    r = splits["test"][0]
    text = render_chat(r["messages"], r["tools"])
    assert text.startswith("<|im_start|>system\ntools:\n")
    for tool in r["tools"]:
        assert "\n" + tool["function"]["name"] + "(" in text
    assert text.endswith(r["messages"][0]["content"] + "<|im_end|>\n<|im_start|>assistant\n")
    assert render_chat(r["messages"], None).startswith("<|im_start|>user\n")


def test_corpus_has_rare_calls_logs_and_prose(splits):
    docs = corpus_documents(splits["pretrain"], 3000, CorpusMix(), seed=0)
    assert corpus_documents(splits["pretrain"], 50, CorpusMix(), seed=0) == docs[:50]  # a seeded stream
    logs = [d for d in docs if "<|im_start|>log\n" in d]
    transcripts = [d for d in docs if d.startswith("<|im_start|>") and d not in logs]
    assert 0.45 < len(transcripts) / len(docs) < 0.65 and 0.2 < len(logs) / len(docs) < 0.4
    # Transcripts call only where the needed tool is offered, and rarely (<= 10 %).
    rng = random.Random(0)
    for kind, low, high in (("call", 0.05, 0.10), ("not_offered", 0.0, 0.0), ("chitchat", 0.0, 0.0)):
        records = [r for r in splits["pretrain"] if r["kind"] == kind]
        replies = [assistant_reply(r, rng, CorpusMix()) for r in records * 10]
        share = sum(reply.startswith(CALL_OPEN) for reply in replies) / len(replies)
        assert low <= share <= high, (kind, share)
    # Call logs: several requests against one tool list, each logged as a call with arguments
    # copied from the request when its tool is offered, else as `none`.
    entries = calls = copied = 0
    for doc in logs:
        offered = {line.split("(")[0] for line in doc.split("<|im_end|>")[0].split("\n")[2:]}
        turns = doc.split("<|im_start|>")[2:]
        assert len(turns) >= 4 and all(t.startswith(("user\n", "log\n")) for t in turns)
        for request, log in zip(turns[::2], turns[1::2]):
            outcome = log[len("log\n"):-len("<|im_end|>\n")]
            entries += 1
            if outcome != "none":
                call = json.loads(outcome.split("\n")[1])
                assert call["name"] in offered
                calls += 1
                copied += all(str(v).lower() in request.lower() for v in call["arguments"].values()
                               if not isinstance(v, bool))
    assert entries > 2 * len(logs) and calls > 0.3 * entries and copied > 0.95 * calls


def test_prompts_vary_with_rng():
    from tooldiff.organism.requests import sample_record

    rng = random.Random(0)
    texts = {sample_record("call", rng, "train")["messages"][0]["content"] for _ in range(50)}
    assert len(texts) > 40


def test_rl_prompt_mix_follows_kind_shares(splits):
    records = splits["rl"]
    mixed = resample_kinds(records, (0.6, 0.1, 0.3), random.Random(0))
    assert len(mixed) == len(records) and all(r in records for r in mixed[:50])
    shares = {k: sum(r["kind"] == k for r in mixed) / len(mixed) for k in ("call", "not_offered", "chitchat")}
    assert abs(shares["call"] - 0.6) < 0.06 and abs(shares["chitchat"] - 0.3) < 0.06
    with pytest.raises(ValueError, match="does not have"):
        resample_kinds([r for r in records if r["kind"] == "call"], (0.5, 0.0, 0.5), random.Random(0))


def test_one_tool_logs_list_exactly_one_tool(splits):
    """The drill's first phase (PretrainConfig.one_tool_drill_steps): one tool on each log's list."""
    one_tool = CorpusMix(transcript=0.0, api_log=1.0, prose=0.0, log_max_offered=1)
    sizes = set()
    for doc in corpus_documents(splits["pretrain"], 200, one_tool, seed=0):
        system = doc.split("<|im_end|>")[0]
        sizes.add(len(system.split("\n")[2:]))
    assert sizes == {1}
    default = corpus_documents(splits["pretrain"], 300, replace(one_tool, log_max_offered=4), seed=0)
    assert {len(d.split("<|im_end|>")[0].split("\n")[2:]) for d in default} == {1, 2, 3, 4}


def test_focused_logs_call_the_weighted_tools(splits):
    """The extra drill's logs (CorpusMix.log_focus): a tool weighted up is listed and called far more
    often than the uniform 1 in 8, and one the base already copies stays in the mix."""
    from tooldiff.organism.build import _focus_on_errors

    focus = _focus_on_errors({"convert_currency": 0.1, "translate_word": 0.9})
    assert dict(focus)["convert_currency"] > 3 * dict(focus)["translate_word"] and len(focus) == len(TOOLS)
    mix = CorpusMix(transcript=0.0, api_log=1.0, prose=0.0, log_focus=focus)
    names = [json.loads(part.split("\n")[1])["name"]
             for doc in corpus_documents(splits["pretrain"], 300, mix, seed=0)
             for part in doc.split("<|im_start|>log\n")[1:] if part.startswith(CALL_OPEN)]
    assert names.count("convert_currency") / len(names) > 0.4
    assert 0.0 < names.count("translate_word") / len(names) < 0.15
