"""The packed experiment runner gives exactly what running each condition alone gives.

Packing (rows of many conditions in one batch, rows copied where the edit is the identity,
identical rows generated once, batches ordered by length) is a speed-up only: every
condition's entry (rows, metrics, examples) must equal the unpacked one.
"""

import torch

from tooldiff.activations.harvest import last_token_outputs
from tooldiff.experiment import load_experiment_config
from tooldiff.experiment import runner
from tooldiff.experiment.conditions import MODEL_INDEX, Candidates, crosscoder_conditions, none_conditions
from tooldiff.experiment.silent import skippable, surely_silent
from tooldiff.interventions.generate import generate_completions

# The machine is shared: one thread avoids OpenMP spin-contention on tiny matrices.
torch.set_num_threads(1)

TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city.",
                                         "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                        "required": ["city"]}}}
TEXTS = ["what is the weather in paris", "call the calculator", "a quick brown fox", "the weather in rome?",
         "tools: get_weather", "hello there", "0123456789", "let me check the weather today in paris please"]
GRID = {"alphas": [1, 16], "doses": [0.5], "n_random": 2, "n_unrelated": 1, "top_s": 2, "n_boot": 50,
        "max_new_tokens": 10, "batch_size": 16}


def records() -> list[dict]:
    return [{"id": f"r{i}", "kind": "call" if i % 2 else "chitchat", "messages": [{"role": "user", "content": t}],
             "tools": [TOOL], "gold": [{"name": "get_weather", "arguments": {"city": "paris"}}] if i % 2 else []}
            for i, t in enumerate(TEXTS)]


def study(tiny):
    tok = tiny.tokenizer()
    models = {"rl": tiny.model("qwen2", len(tok), seed=0), "base": tiny.model("qwen2", len(tok), seed=1)}
    ccs = {"cc0": tiny.crosscoder(seed=0), "cc1": tiny.crosscoder(seed=1)}
    cfg = load_experiment_config(GRID)
    gen = torch.Generator().manual_seed(0)
    conditions = none_conditions(cfg.positions)
    for name, cc in ccs.items():
        cand = Candidates(top=[0, 9], unrelated=[20], relative_size={0: 0.1, 9: 0.05, 20: 0.1},
                          dom={"call_vs_nocall": torch.randn(cc.d_model, generator=gen)},
                          random_DR=torch.randn(2, cc.d_model, generator=gen),
                          directions={i: torch.randn(cc.d_model, generator=gen) for i in (0, 20)})
        conditions += crosscoder_conditions(name, tiny.LAYER, cfg, cand)
    return tok, models, ccs, cfg, conditions


def unpacked(cond, tok, models, ccs, recs, cfg) -> dict:
    """The reference: the condition alone, every row generated, one batch."""
    outs = generate_completions(models[cond.model], tok, recs, interventions=list(cond.specs) or None,
                                crosscoder=ccs.get(cond.crosscoder), model_index=MODEL_INDEX[cond.model],
                                max_new_tokens=cfg.max_new_tokens, batch_size=len(recs), progress=False)
    return runner._score(cond, recs, [c.text for c in outs], cfg)


def test_packed_results_equal_each_condition_run_alone(tiny, tmp_path):
    tok, models, ccs, cfg, conditions = study(tiny)
    recs = records()
    packed = runner.run_conditions(conditions, models, tok, recs, ccs, tmp_path / "results.jsonl", cfg)
    assert len(packed) == len(set(conditions)) > 20
    for cond in dict.fromkeys(conditions):
        assert packed[cond.key] == unpacked(cond, tok, models, ccs, recs, cfg), cond.describe()
    # a narrower grid over the same file gets its own conditions back, not the wider grid's
    few = conditions[:3]
    again = runner.run_conditions(few, models, tok, recs, ccs, tmp_path / "results.jsonl", cfg)
    assert list(again) == [c.key for c in dict.fromkeys(few)] and all(again[c.key] == packed[c.key] for c in few)

    # the test covers the shortcuts: some rows are copies of `none`, some signatures are shared
    gen = runner.Generator(models, tok, recs, ccs, cfg)
    plan = runner.plan_rows(list(dict.fromkeys(conditions)), gen)
    copied = sum(src == runner.reference(c.model) for c in conditions if skippable(c) for src in plan.sources[c.key])
    assert 0 < copied < sum(len(recs) for c in conditions if skippable(c))
    assert len(plan.pending) < len(set(conditions))


def test_silent_latents_really_are_zero_and_most_are_found(tiny):
    tok = tiny.tokenizer()
    model, cc = tiny.model("qwen2", len(tok), seed=0), tiny.crosscoder(seed=0)
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in TEXTS * 4]
    h_ND = last_token_outputs(model, tiny.LAYER, ids, tok.pad_token_id, batch_size=5)
    latents = list(range(cc.model_latents(0).stop))
    silent_NS = surely_silent(cc, h_ND, 0, latents)
    f_NS = cc.encode_single(h_ND, 0)[:, latents]
    assert not bool((silent_NS & (f_NS != 0)).any())  # never claims silent where the latent fires
    assert silent_NS.sum() > 0.9 * (f_NS == 0).sum()  # the margin costs few rows
