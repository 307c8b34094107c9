"""Pretraining rows: whole documents, never packed, padding masked out of attention and loss."""

from __future__ import annotations

import pytest
import torch

from tooldiff.organism.pretrain import batches, document_rows, pad_batch


class CharTokenizer:
    """One id per character: enough to check how documents become rows."""

    pad_token_id = 0

    def __call__(self, docs, add_special_tokens=False):
        return {"input_ids": [[ord(c) for c in d] for d in docs]}


def test_every_row_is_one_whole_document_ended_by_pad():
    docs = ["ab", "cdef", "g", "hijklmnop"]
    rows = document_rows(iter(docs), CharTokenizer(), n_rows=4, max_len=6)
    assert rows == [[97, 98, 0], [99, 100, 101, 102, 0], [103, 0], [104, 105, 106, 107, 108, 109]]


def test_a_short_corpus_is_an_error():
    with pytest.raises(RuntimeError, match="ran out after 2 of 3"):
        document_rows(iter(["a", "b"]), CharTokenizer(), n_rows=3, max_len=8)


def test_padding_is_on_the_right_and_masked():
    ids_BS, mask_BS = pad_batch([[5, 6, 7], [8]], pad_id=0)
    assert ids_BS.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert mask_BS.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_batches_cover_each_phase_in_order_with_little_padding():
    rows = [[i] * (1 + i % 17) for i in range(64)]
    phase2 = [[100 + i] * 3 for i in range(16)]
    seen, padded, real = [], 0, 0
    for ids_BS, mask_BS in batches([rows, phase2], batch_size=8, seed=0, pad_id=-1, bucket=4):
        seen.append(sorted({int(x) for x in ids_BS[mask_BS.bool()].tolist()}))
        padded, real = padded + mask_BS.numel(), real + int(mask_BS.sum())
    first = [x for batch in seen[:8] for x in batch]
    assert sorted(first) == list(range(64)) and all(x >= 100 for b in seen[8:] for x in b)
    assert len(seen) == 10
    assert real / padded > 0.8  # sorted within runs: rows of a batch have similar lengths


def test_same_seed_same_batches():
    rows = [[i] * (1 + i % 5) for i in range(40)]
    a = [ids.tolist() for ids, _ in batches([rows], 8, seed=3, pad_id=0)]
    b = [ids.tolist() for ids, _ in batches([rows], 8, seed=3, pad_id=0)]
    c = [ids.tolist() for ids, _ in batches([rows], 8, seed=4, pad_id=0)]
    assert a == b and a != c


def test_padding_does_not_change_the_loss_of_a_document():
    """A document's loss is the same alone and right-padded beside a longer one."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2)).eval()
    rows = document_rows(iter(["hi", "hello there, how are you"]), CharTokenizer(), n_rows=2, max_len=64)
    ids_BS, mask_BS = pad_batch(rows, CharTokenizer.pad_token_id)
    with torch.no_grad():
        alone = model(input_ids=torch.tensor([rows[0]]), labels=torch.tensor([rows[0]])).loss
        batched = model(input_ids=ids_BS, attention_mask=mask_BS, labels=ids_BS.masked_fill(mask_BS == 0, -100))
        logits = batched.logits
    n = len(rows[0])
    padded = torch.nn.functional.cross_entropy(logits[0, :n - 1], ids_BS[0, 1:n])
    assert torch.allclose(alone, padded, atol=1e-5)


LAGGING_TOOL = {"translate_word": 0.2, "get_weather": 0.9}  # copies overall, but not one tool's arguments
COPIES = {"translate_word": 0.8, "get_weather": 0.9}


@pytest.mark.parametrize("measured,by_tool,steps", [
    ([0.9], [{}], 0), ([0.1, 0.7], [{}, {}], 2), ([0.1, 0.2, 0.3], [{}, {}, {}], 4),
    ([0.8, 0.8], [LAGGING_TOOL, COPIES], 2), ([0.8], [COPIES], 0)])
def test_the_base_drills_on_until_it_copies_and_no_further(tiny_organism, monkeypatch, measured, by_tool, steps):
    """Copying arrives at a seed-dependent step, one argument kind at a time: below the floor on
    calibration calls, overall or for one tool, more call-log chunks follow, until the base copies
    or the cap is reached; a base that copies is left alone."""
    from dataclasses import replace

    import tooldiff.organism.measure as measure
    from tooldiff.hf import load_model, load_tokenizer
    from tooldiff.organism.build import Build, _drill_until_it_copies
    from tooldiff.organism.config import get_preset

    tiny = get_preset("tiny")
    cfg = replace(tiny, pretrain=replace(tiny.pretrain, batch_size=2, copy_check=3, max_extra_drill_steps=4,
                                         extra_drill_chunk=2, drill_steps=8, one_tool_drill_steps=8))
    build = Build(out=tiny_organism, cfg=cfg, seed=0, variant="full", build_hash="test")
    model, tokenizer = load_model(tiny_organism / "base"), load_tokenizer(tiny_organism / "tokenizer")
    before = [p.detach().clone() for p in model.parameters()]
    results, checked = iter(zip(measured, by_tool)), []

    def forced_calls(m, tok, calls, seed, bs):
        checked.append(len(calls))
        mean, tools = next(results)
        return {"mean": mean, "by_tool": tools}

    monkeypatch.setattr(measure, "forced_call_accuracy", forced_calls)
    losses = []
    got = _drill_until_it_copies(build, model, tokenizer, build.data("pretrain"), losses)
    assert got["extra_drill_steps"] == steps == len(losses)
    assert got["forced_calls_calibration"] == measured and checked == [3] * len(measured)
    assert got["forced_calls_by_tool"] == by_tool[-1]
    changed = any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert changed is (steps > 0)


def test_pretraining_plan_puts_one_tool_logs_first():
    from dataclasses import replace

    from tooldiff.errors import UserError
    from tooldiff.organism.build import pretraining_plan
    from tooldiff.organism.config import get_preset

    cfg = get_preset("default")
    p = cfg.pretrain
    plan = [(stream, steps, mix.log_max_offered, mix.api_log) for mix, stream, steps in pretraining_plan(cfg)]
    assert plan == [("drill-one-tool", p.one_tool_drill_steps, 1, 1.0), ("corpus", p.steps, 4, cfg.corpus.api_log)]
    split = replace(cfg, pretrain=replace(p, one_tool_drill_steps=200))
    assert [(s, n) for _, s, n in pretraining_plan(split)] == [("drill-one-tool", 200), ("drill", p.drill_steps - 200),
                                                             ("corpus", p.steps)]
    assert [s for _, s, _ in pretraining_plan(get_preset("tiny"))] == ["corpus"]
    with pytest.raises(UserError, match="one_tool_drill_steps"):
        replace(p, one_tool_drill_steps=p.drill_steps + 1)
