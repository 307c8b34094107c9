"""Batched generation under interventions: batching, per-row steering, stops, sampling, decoding."""

import pytest
import torch

from tooldiff.errors import UserError
from tooldiff.interventions import Intervention, generate, generate_completions, intervene

torch.set_num_threads(1)
PROMPTS = [
    "the weather in paris is",
    "call",
    "tools: get_weather, add_numbers user: what is the weather in rome?",
    "a quick brown",
    "12 and 30",
]


@pytest.fixture(scope="module")
def tok(tiny):
    return tiny.tokenizer()


@pytest.fixture(scope="module")
def cc(tiny):
    crosscoder = tiny.crosscoder()
    with torch.no_grad():
        crosscoder.b_enc_L[[3, 40]] = 50.0  # two latents that always fire, so steering acts
    return crosscoder


def ids_of(completions):
    return [c.token_ids for c in completions]


@pytest.mark.parametrize("arch", ["qwen2", "gpt2"])
@pytest.mark.parametrize("positions", ["last_prompt", "all"])
def test_batched_generation_equals_row_by_row(tiny, tok, cc, arch, positions):
    model = tiny.model(arch, len(tok))
    steer = [Intervention(op="steer", layer=tiny.LAYER, feature=[3, 40], alpha=8.0, positions=positions)]
    kwargs = dict(interventions=steer, crosscoder=cc, max_new_tokens=12, progress=False)
    batched = generate_completions(model, tok, PROMPTS, batch_size=4, **kwargs)
    alone = generate_completions(model, tok, PROMPTS, batch_size=1, **kwargs)
    assert ids_of(batched) == ids_of(alone)
    plain = generate_completions(model, tok, PROMPTS, max_new_tokens=12, batch_size=4, progress=False)
    assert ids_of(batched) != ids_of(plain)  # the steering really acted


def test_per_row_interventions_equal_each_row_alone(tiny, tok, cc):
    model = tiny.model("llama", len(tok))
    vector = torch.randn(32, generator=torch.Generator().manual_seed(2))
    per_row = [
        [Intervention(op="steer", layer=tiny.LAYER, feature=[3], alpha=16.0)],
        [],
        [Intervention(op="add", layer=tiny.LAYER, vector=vector, dose=0.8, positions="generated")],
        [Intervention(op="ablate", layer=tiny.LAYER, feature=[3, 40], positions="all"),
         Intervention(op="add", layer=tiny.LAYER, feature=40, dose=0.5, positions="prompt")],
        [Intervention(op="steer", layer=tiny.LAYER, feature=[3], alpha=16.0)],
    ]
    kwargs = dict(crosscoder=cc, max_new_tokens=10, progress=False)
    together = generate_completions(model, tok, PROMPTS, per_row, batch_size=5, **kwargs)
    for i, prompt in enumerate(PROMPTS):
        alone = generate_completions(model, tok, [prompt], per_row[i], batch_size=1, **kwargs)
        assert together[i].token_ids == alone[0].token_ids, i


def test_matches_hf_generate_under_the_same_hooks(tiny, tok, cc):
    model = tiny.model("qwen2", len(tok))
    steer = [Intervention(op="steer", layer=tiny.LAYER, feature=[3, 40], alpha=8.0, positions="all")]
    ours = generate_completions(model, tok, PROMPTS[:3], steer, cc, max_new_tokens=8, progress=False)
    rows = [tok(p, add_special_tokens=False)["input_ids"] for p in PROMPTS[:3]]
    ids_BT, mask_BT = tiny.left_pad(rows, pad_id=tok.pad_token_id)
    with intervene(model, steer, cc), torch.no_grad():
        out_BT = model.generate(input_ids=ids_BT, attention_mask=mask_BT, max_new_tokens=8, do_sample=False,
                                pad_token_id=tok.pad_token_id, eos_token_id=None)
    for r, completion in enumerate(ours):
        n = len(completion.token_ids)
        assert out_BT[r, ids_BT.shape[1]:ids_BT.shape[1] + n].tolist() == completion.token_ids


def test_stop_strings_cut_the_text(tiny, tok):
    model = tiny.model("qwen2", len(tok))
    full = generate_completions(model, tok, PROMPTS[:1], max_new_tokens=16, progress=False)[0]
    assert full.finish_reason == "length" and len(full.token_ids) == 16
    stop = full.text[len(full.text) // 2:len(full.text) // 2 + 2]
    cut = generate_completions(model, tok, PROMPTS[:1], max_new_tokens=16, stop=[stop], progress=False)[0]
    assert cut.finish_reason == "stop" and stop not in cut.text
    assert full.text.startswith(cut.text) and len(cut.token_ids) < 16


def test_eos_ends_a_row_and_is_not_in_the_text(tiny, tok):
    model = tiny.model("qwen2", len(tok))
    plain = generate_completions(model, tok, PROMPTS, max_new_tokens=6, progress=False)
    assert all(c.prompt_tokens > 0 and len(c.token_ids) > 0 for c in plain)
    # Push the last layer's output along <eos>'s unembedding row: every row must stop at once.
    to_eos = [Intervention(op="add", layer=tiny.N_LAYERS - 1, vector=model.lm_head.weight[tok.eos_token_id].detach(),
                           dose=20.0, positions="all")]
    ended = generate_completions(model, tok, PROMPTS, to_eos, max_new_tokens=6, progress=False)
    assert all(c.finish_reason == "stop" and c.token_ids == [] and c.text == "" for c in ended)


def test_added_non_special_tokens_stay_in_the_text(tiny, tok):
    model = tiny.model("qwen2", len(tok))
    tool_call = tok.convert_tokens_to_ids("<tool_call>")
    # Push the last layer's output along <tool_call>'s unembedding row: greedy must pick it.
    push = [Intervention(op="add", layer=tiny.N_LAYERS - 1, vector=model.lm_head.weight[tool_call].detach(),
                         dose=20.0, positions="all")]
    out = generate_completions(model, tok, PROMPTS[:2], push, max_new_tokens=3, progress=False)
    assert all(c.token_ids == [tool_call] * 3 for c in out)
    assert all(c.text == "<tool_call>" * 3 for c in out)


def test_seeded_sampling_is_reproducible_and_batch_independent(tiny, tok):
    model = tiny.model("gpt2", len(tok))
    kwargs = dict(max_new_tokens=10, temperature=1.0, top_p=0.9, progress=False)
    a = generate_completions(model, tok, PROMPTS, seed=7, batch_size=5, **kwargs)
    b = generate_completions(model, tok, PROMPTS, seed=7, batch_size=2, **kwargs)
    c = generate_completions(model, tok, PROMPTS, seed=8, batch_size=5, **kwargs)
    greedy = generate_completions(model, tok, PROMPTS, max_new_tokens=10, progress=False)
    assert ids_of(a) == ids_of(b)
    assert ids_of(a) != ids_of(c) and ids_of(a) != ids_of(greedy)


def test_on_token_sees_every_token_and_can_end_a_row(tiny, tok):
    model = tiny.model("qwen2", len(tok))
    seen: dict[int, list[int]] = {}

    def on_token(row: int, token: int) -> bool:
        seen.setdefault(row, []).append(token)
        return row == 1 and len(seen[row]) == 3

    out = generate_completions(model, tok, PROMPTS, max_new_tokens=8, batch_size=3, on_token=on_token, progress=False)
    assert {r: seen[r] for r in range(len(PROMPTS))} == {r: c.token_ids for r, c in enumerate(out)}
    assert len(out[1].token_ids) == 3 and out[1].finish_reason == "stop"
    assert all(len(c.token_ids) == 8 for r, c in enumerate(out) if r != 1)


def test_adjust_logits_gets_prompt_indices(tiny, tok):
    model = tiny.model("qwen2", len(tok))
    plain = generate_completions(model, tok, PROMPTS, max_new_tokens=4, batch_size=2, progress=False)
    banned = plain[2].token_ids[0]
    batches: list[list[int]] = []

    def ban_for_row_2(rows: list[int], logits_BV: torch.Tensor) -> torch.Tensor:
        batches.append(list(rows))
        if 2 in rows:
            logits_BV[rows.index(2), banned] = float("-inf")
        return logits_BV

    out = generate_completions(model, tok, PROMPTS, max_new_tokens=4, batch_size=2, adjust_logits=ban_for_row_2,
                               progress=False)
    assert banned not in out[2].token_ids
    assert [c.token_ids for r, c in enumerate(out) if r != 2] == [c.token_ids for r, c in enumerate(plain) if r != 2]
    assert sorted(r for b in dict.fromkeys(map(tuple, batches)) for r in b) == list(range(len(PROMPTS)))


def test_prompt_records_are_rendered(tiny, tok):
    model = tiny.model("qwen2", len(tok))
    record = {"id": "r1", "messages": [{"role": "user", "content": "what is the weather"}], "tools": []}
    from_record = generate(model, tok, [record], max_new_tokens=5, progress=False)
    from_text = generate(model, tok, ["user: what is the weather\nassistant:"], max_new_tokens=5, progress=False)
    assert from_record == from_text


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(prompts="call"), "list of strings"),
        (dict(max_new_tokens=0), "max_new_tokens"),
        (dict(temperature=-1.0), "temperature"),
        (dict(top_p=0.0), "top_p"),
        (dict(seed=[1, 2]), "2 seeds for 5 prompts"),
        (dict(interventions=[[], []]), "2 lists for 5 prompts"),
        (dict(prompts=[""]), "tokenizes to nothing"),
    ],
)
def test_bad_generation_arguments(tiny, tok, kwargs, message):
    model = tiny.model("qwen2", len(tok))
    args = dict(prompts=PROMPTS, max_new_tokens=2, progress=False) | kwargs
    with pytest.raises(UserError, match=message):
        generate_completions(model, tok, **args)
