"""Splice identity on the embedded organism (both models), through its own tokenizer and template."""

import pytest
import torch

from tooldiff.hf import hidden_size, render_prompt
from tooldiff.interventions import Intervention, generate_completions, intervene

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def organism(tiny_organism):
    from tooldiff.organism import load_organism

    return load_organism(tiny_organism)


def rendered_batch(tiny, org, n: int = 6):
    records = org.records("test")[:n]
    rows = [org.tokenizer(render_prompt(org.tokenizer, r), add_special_tokens=False)["input_ids"] for r in records]
    assert len({len(r) for r in rows}) > 1, "the batch should need padding"
    return records, tiny.left_pad(rows, pad_id=org.tokenizer.pad_token_id)


@pytest.mark.parametrize("which, model_index", [("rl", 0), ("base", 1)])
def test_splice_with_error_is_the_identity_on_the_organism(tiny, organism, which, model_index):
    model = getattr(organism, which)
    cc = tiny.crosscoder(d_model=hidden_size(model), layer=organism.layer)
    _, (ids_BT, mask_BT) = rendered_batch(tiny, organism)
    pos_BT = (mask_BT.cumsum(-1) - 1).clamp(min=0)

    def logits(interventions):
        with intervene(model, interventions, cc, model_index), torch.no_grad():
            return model(input_ids=ids_BT, attention_mask=mask_BT, position_ids=pos_BT).logits

    clean = logits(None)
    splice = logits([Intervention(op="reconstruct", layer=organism.layer, add_error=True, positions="all")])
    recon = logits([Intervention(op="reconstruct", layer=organism.layer, positions="all")])
    assert (splice - clean).abs().max().item() <= 1e-5
    assert (recon - clean).abs().max().item() > 1e-3


def test_splice_with_error_leaves_organism_generation_unchanged(tiny, organism):
    cc = tiny.crosscoder(d_model=hidden_size(organism.rl), layer=organism.layer)
    records, _ = rendered_batch(tiny, organism)
    splice = [Intervention(op="reconstruct", layer=organism.layer, add_error=True, positions="all")]
    plain = generate_completions(organism.rl, organism.tokenizer, records, max_new_tokens=24, progress=False)
    spliced = generate_completions(organism.rl, organism.tokenizer, records, splice, cc, max_new_tokens=24,
                                   progress=False)
    assert [c.token_ids for c in spliced] == [c.token_ids for c in plain]
