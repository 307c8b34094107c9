"""Paired harvest on tiny random Qwen2 models built offline from configs."""

import json
import sys

import pytest
import torch

from tooldiff.activations import harvest as harvest_mod
from tooldiff.activations import harvest_pair, load_activations
from tooldiff import hf
from tooldiff.errors import UserError

torch.set_num_threads(1)

CHAT_TEMPLATE = (
    "{%- if tools %}<|im_start|>system\ntools: {{ tools | map(attribute='function.name') | join(', ') }}<|im_end|>\n"
    "{% endif %}{%- for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = ["what is the weather in paris today", "add 3 and 4 please", "hello there, how are you",
          "tools: get_weather, add", "the quick brown fox jumps over the lazy dog"] * 20


def build_tokenizer(path, vocab_size=300):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(path)
    return fast


def build_model(path, tokenizer_dir, seed, hidden=32, layers=3, vocab_size=300):
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    tok = PreTrainedTokenizerFast.from_pretrained(str(tokenizer_dir))
    cfg = Qwen2Config(vocab_size=max(len(tok), vocab_size), hidden_size=hidden, intermediate_size=2 * hidden,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=256)
    torch.manual_seed(seed)
    Qwen2ForCausalLM(cfg).save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return path


TOOLS = [{"type": "function", "function": {"name": n, "description": n, "parameters": {"type": "object"}}}
         for n in ("get_weather", "add")]


def records():
    recs = []
    for i in range(7):
        recs.append({"id": f"call-{i}", "messages": [{"role": "user", "content": "what is the weather in paris " * (1 + i % 3)}],
                     "tools": TOOLS, "gold": [{"get_weather": {"city": ["paris"]}}], "kind": "call"})
        recs.append({"id": f"chat-{i}", "messages": [{"role": "user", "content": "hello there" + " friend" * i}],
                     "tools": TOOLS, "gold": [], "kind": "chitchat"})
    recs.append({"id": "gen-0", "text": "the quick brown fox jumps", "kind": "generic"})
    return recs


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("pair")
    build_tokenizer(root / "tok")
    rl = build_model(root / "rl", root / "tok", seed=1)
    base = build_model(root / "base", root / "tok", seed=2)
    data = root / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records()))
    return {"root": root, "rl": rl, "base": base, "data": data}


def run_harvest(pair, out, **kw):
    args = dict(base=str(pair["base"]), rl=str(pair["rl"]), layer=0, data=pair["data"], out=out,
                positions="decision", batch_size=4, shard_rows=5)
    args.update(kw)
    return harvest_pair(**args)


def reference_hidden(model_dir, text_ids, layer):
    """Layer output of ONE unpadded prompt, via output_hidden_states (independent of our hook)."""
    from tooldiff.hf import load_model

    model = load_model(model_dir)
    with torch.no_grad():
        out = model(input_ids=torch.tensor([text_ids]), output_hidden_states=True)
    return out.hidden_states[layer + 1][0]


def prompt_ids(pair):
    from tooldiff.activations.records import tokenize_records
    from tooldiff.hf import load_tokenizer

    return tokenize_records(records(), load_tokenizer(pair["rl"]), pair["data"])


def test_decision_rows_equal_unpadded_forward_of_each_model(pair, tmp_path):
    manifest = run_harvest(pair, tmp_path / "h")
    store = load_activations(tmp_path / "h")
    prompts = prompt_ids(pair)
    assert store.n_rows == len(prompts) == manifest.n_prompts and len(manifest.shards) > 1
    assert manifest.models == [str(pair["rl"]), str(pair["base"])]  # A = rl first
    lengths = {len(p.token_ids) for p in prompts}
    assert len(lengths) > 3  # batches really mix lengths, so padding is exercised
    for row in range(store.n_rows):
        p = prompts[int(store.rows["sample"][row])]
        assert int(store.rows["token"][row]) == len(p.token_ids) - 1 and int(store.rows["decision"][row]) == 1
        assert int(store.rows["label"][row]) == (1 if p.kind == "call" else 0)
        assert manifest.kinds[int(store.rows["kind"][row])] == p.kind
        for m, model_dir in enumerate((pair["rl"], pair["base"])):
            ref = reference_hidden(model_dir, p.token_ids, 0)[-1]
            assert torch.allclose(store.acts_NMD[row, m], ref, atol=1e-5), (p.id, m)
    assert not torch.allclose(store.acts_NMD[:, 0], store.acts_NMD[:, 1])  # two different models


def test_prompt_positions_cover_every_token_and_stats_match(pair, tmp_path):
    run_harvest(pair, tmp_path / "h", positions="prompt", layer=1, batch_size=3, shard_rows=40)
    store = load_activations(tmp_path / "h")
    prompts = prompt_ids(pair)
    assert store.n_rows == sum(len(p.token_ids) for p in prompts)
    assert int(store.rows["decision"].sum()) == len(prompts)
    longest = max(prompts, key=lambda p: len(p.token_ids))
    rows = (store.rows["sample"] == longest.index).nonzero().flatten()
    order = store.rows["token"][rows].argsort()
    ref = reference_hidden(pair["base"], longest.token_ids, 1)
    assert torch.allclose(store.acts_NMD[rows[order], 1], ref, atol=1e-5)
    acts = store.acts_NMD.double()
    assert torch.allclose(store.mean_MD, acts.mean(0), atol=1e-9)
    run_harvest(pair, tmp_path / "all", positions="all", layer=1, batch_size=3, shard_rows=40)
    assert torch.equal(load_activations(tmp_path / "all").acts_NMD, store.acts_NMD)  # all = prompt (no completions)
    assert torch.allclose(store.var_MD, acts.var(0), atol=1e-9)


def test_interrupted_harvest_resumes_to_identical_output(pair, tmp_path, monkeypatch):
    straight = run_harvest(pair, tmp_path / "straight")
    calls = {"n": 0}
    original = harvest_mod._harvest_batch

    def dies_after_three(*a, **kw):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return original(*a, **kw)

    monkeypatch.setattr(harvest_mod, "_harvest_batch", dies_after_three)
    with pytest.raises(KeyboardInterrupt):
        run_harvest(pair, tmp_path / "resumed")
    partial = json.loads((tmp_path / "resumed" / "manifest.json").read_text())
    assert not partial["complete"] and 0 < partial["next_prompt"] < straight.n_prompts
    monkeypatch.setattr(harvest_mod, "_harvest_batch", original)
    resumed = run_harvest(pair, tmp_path / "resumed")
    assert resumed.complete
    # (byte checksums differ: safetensors writes its metadata map in arbitrary order)
    assert [(s.rows, s.stop_prompt) for s in resumed.shards] == [(s.rows, s.stop_prompt) for s in straight.shards]
    a, b = load_activations(tmp_path / "straight"), load_activations(tmp_path / "resumed")
    assert torch.equal(a.acts_NMD, b.acts_NMD) and torch.allclose(a.var_MD, b.var_MD)
    assert all(torch.equal(a.rows[f], b.rows[f]) for f in a.rows)
    with pytest.raises(UserError, match="different harvest"):
        run_harvest(pair, tmp_path / "resumed", layer=1)


def test_float16_storage(pair, tmp_path):
    run_harvest(pair, tmp_path / "h", dtype="float16")
    store = load_activations(tmp_path / "h")
    assert store.acts_NMD.dtype == torch.float16 and store.rows_float(torch.arange(2)).dtype == torch.float32


def _no_weights(*args, **kwargs):
    raise AssertionError("weights were loaded before the pair was checked")


def test_mismatched_pairs_fail_before_any_work(pair, tmp_path, monkeypatch):
    root = pair["root"]
    wide = build_model(root / "wide", root / "tok", seed=3, hidden=48)
    deep = build_model(root / "deep", root / "tok", seed=3, layers=4)
    build_tokenizer(root / "tok2", vocab_size=280)
    other_tok = build_model(root / "othertok", root / "tok2", seed=3)
    for model, message in ((wide, "hidden sizes 32 vs 48"), (deep, "3 vs 4 decoder layers"),
                           (other_tok, "different vocabularies")):
        with monkeypatch.context() as m, pytest.raises(UserError, match=message):
            m.setattr(hf, "load_model", _no_weights)  # the configs alone must catch it
            run_harvest(pair, tmp_path / model.name, base=str(model))
        assert not (tmp_path / model.name).exists()
    with monkeypatch.context() as m, pytest.raises(UserError, match="layer 5 is out of range"):
        m.setattr(hf, "load_model", _no_weights)
        run_harvest(pair, tmp_path / "x", layer=5)
    with pytest.raises(UserError, match="--positions"):
        run_harvest(pair, tmp_path / "x", positions="last")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "hi"}\nnot json\n')
    with pytest.raises(UserError, match="bad.jsonl:2"):
        run_harvest(pair, tmp_path / "x", data=bad)


def test_cli_harvest_and_one_line_error(pair, tmp_path, monkeypatch, capsys):
    from tooldiff.cli import main

    args = ["tooldiff", "harvest", "--rl", str(pair["rl"]), "--layer", "1", "--data", str(pair["data"])]
    monkeypatch.setattr(sys, "argv", [*args, "--base", str(pair["base"]), "--out", str(tmp_path / "h")])
    with pytest.raises(SystemExit) as exit_info:  # typer ends even a successful command with exit(0)
        main()
    assert exit_info.value.code in (0, None)
    assert load_activations(tmp_path / "h").n_rows == 15
    assert f"15 rows (decision) from 15 prompts, layer 1, 1 shard(s) -> {tmp_path / 'h'}" in capsys.readouterr().out
    if not (pair["root"] / "wide").exists():
        build_model(pair["root"] / "wide", pair["root"] / "tok", seed=3, hidden=48)
    monkeypatch.setattr(sys, "argv", [*args, "--base", str(pair["root"] / "wide"), "--out", str(tmp_path / "h2")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if "error" in line] == ["error: model pair mismatch: hidden sizes 32 vs 48"]
