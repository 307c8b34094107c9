"""Splice identity (SPEC section 1): x_hat + (x - x_hat) leaves the logits as without a hook."""

import pytest
import torch

from tooldiff.interventions import Intervention, generate_completions, intervene

torch.set_num_threads(1)
VOCAB = 64


@pytest.mark.parametrize("arch", ["qwen2", "llama", "gpt2"])
@pytest.mark.parametrize("model_index", [0, 1])
def test_splice_with_error_is_the_identity(tiny, arch, model_index):
    model, cc = tiny.model(arch, VOCAB), tiny.crosscoder()
    ids_BT, mask_BT = tiny.padded_batch(VOCAB)
    clean = tiny.forward(model, ids_BT, mask_BT)
    with intervene(model, [Intervention(op="reconstruct", layer=tiny.LAYER, add_error=True, positions="all")], cc, model_index):
        spliced = tiny.forward(model, ids_BT, mask_BT)
    assert (spliced - clean).abs().max().item() <= 1e-5
    # Without the error term the same hook must move the logits: the hook is really on.
    with intervene(model, [Intervention(op="reconstruct", layer=tiny.LAYER, positions="all")], cc, model_index):
        reconstructed = tiny.forward(model, ids_BT, mask_BT)
    assert (reconstructed - clean).abs().max().item() > 1e-2


@pytest.mark.parametrize("arch", ["qwen2", "gpt2"])
def test_splice_with_error_leaves_generation_unchanged(tiny, arch):
    tok = tiny.tokenizer()
    model, cc = tiny.model(arch, len(tok)), tiny.crosscoder()
    prompts = ["the weather in paris", "call", "tools: get_weather"]
    plain = generate_completions(model, tok, prompts, max_new_tokens=10, progress=False)
    splice = [Intervention(op="reconstruct", layer=tiny.LAYER, add_error=True, positions="all")]
    spliced = generate_completions(model, tok, prompts, splice, cc, max_new_tokens=10, progress=False)
    assert [c.token_ids for c in spliced] == [c.token_ids for c in plain]


def test_mismatched_normalization_is_a_different_splice(tiny):
    model, cc = tiny.model("qwen2", VOCAB), tiny.crosscoder()
    ids_BT, mask_BT = tiny.padded_batch(VOCAB)
    clean = tiny.forward(model, ids_BT, mask_BT)
    diffs = {}
    for norm in ("matched", "mismatched"):
        spec = Intervention(op="reconstruct", layer=tiny.LAYER, normalization=norm, positions="last_prompt")
        with intervene(model, [spec], cc, 0):
            diffs[norm] = (tiny.forward(model, ids_BT, mask_BT) - clean)[:, -1].abs().max().item()
    assert diffs["matched"] > 0 and diffs["mismatched"] > 0 and diffs["matched"] != diffs["mismatched"]
