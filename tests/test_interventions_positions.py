"""Positions under left padding and the KV cache: exactly the intended tokens are edited."""

import pytest
import torch

from tooldiff.errors import UserError
from tooldiff.hf import decoder_layers
from tooldiff.interventions import Intervention, intervene

torch.set_num_threads(1)
VOCAB = 64
DIRECTION = torch.randn(32, generator=torch.Generator().manual_seed(5)).tolist()  # the tiny decoders' width


def add_at(tiny, positions: str) -> Intervention:
    return Intervention(op="add", layer=tiny.LAYER, vector=DIRECTION, dose=0.5, positions=positions)


def changed_BT(a_BTD: torch.Tensor, b_BTD: torch.Tensor) -> torch.Tensor:
    return (a_BTD - b_BTD).abs().amax(dim=-1) > 0


def layer_output(tiny, model, ids_BT, mask_BT, interventions):
    with intervene(model, interventions):
        recorder = tiny.LayerRecorder(decoder_layers(model)[tiny.LAYER])  # after intervene's hook: sees the edit
        try:
            logits = tiny.forward(model, ids_BT, mask_BT)
        finally:
            recorder.remove()
    return recorder.calls[0], logits


@pytest.mark.parametrize("arch", ["qwen2", "llama", "gpt2"])
def test_last_prompt_edits_exactly_the_last_column_of_each_row(tiny, arch):
    model = tiny.model(arch, VOCAB)
    ids_BT, mask_BT = tiny.padded_batch(VOCAB, lengths=(7, 3, 5, 1))
    h_clean, logits_clean = layer_output(tiny, model, ids_BT, mask_BT, None)
    h_steer, logits_steer = layer_output(tiny, model, ids_BT, mask_BT, [add_at(tiny, "last_prompt")])
    expected_BT = torch.zeros_like(mask_BT, dtype=torch.bool)
    expected_BT[:, -1] = True
    assert torch.equal(changed_BT(h_steer, h_clean), expected_BT)
    # Causality: only the last column's logits can move.
    assert torch.equal(changed_BT(logits_steer, logits_clean), expected_BT)


@pytest.mark.parametrize("arch", ["qwen2", "gpt2"])
def test_prompt_edits_every_real_token_and_no_pad(tiny, arch):
    model = tiny.model(arch, VOCAB)
    ids_BT, mask_BT = tiny.padded_batch(VOCAB, lengths=(6, 2, 4))
    h_clean, _ = layer_output(tiny, model, ids_BT, mask_BT, None)
    h_steer, _ = layer_output(tiny, model, ids_BT, mask_BT, [add_at(tiny, "prompt")])
    assert torch.equal(changed_BT(h_steer, h_clean), mask_BT.bool())
    h_all, _ = layer_output(tiny, model, ids_BT, mask_BT, [add_at(tiny, "all")])
    assert torch.equal(changed_BT(h_all, h_clean), mask_BT.bool())


def test_last_prompt_is_read_from_the_mask_under_right_padding(tiny):
    model = tiny.model("qwen2", VOCAB)
    ids_BT = torch.tensor([[5, 6, 7, 8], [9, 10, 1, 1]])
    mask_BT = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    h_clean, _ = layer_output(tiny, model, ids_BT, mask_BT, None)
    h_steer, _ = layer_output(tiny, model, ids_BT, mask_BT, [add_at(tiny, "last_prompt")])
    expected_BT = torch.tensor([[0, 0, 0, 1], [0, 1, 0, 0]], dtype=torch.bool)
    assert torch.equal(changed_BT(h_steer, h_clean), expected_BT)


def decode_with_cache(tiny, model, ids_BT, mask_BT, next_tokens_BS, interventions):
    """Prefill, then feed fixed tokens one at a time under the KV cache; layer-L output per call."""
    pos_BT = (mask_BT.cumsum(-1) - 1).clamp(min=0)
    with intervene(model, interventions), torch.no_grad():
        recorder = tiny.LayerRecorder(decoder_layers(model)[tiny.LAYER])
        try:
            out = model(input_ids=ids_BT, attention_mask=mask_BT, position_ids=pos_BT, use_cache=True)
            logits = [out.logits[:, -1]]
            for s in range(next_tokens_BS.shape[1]):
                mask_BT = torch.cat([mask_BT, torch.ones_like(mask_BT[:, :1])], dim=1)
                pos_BT = pos_BT[:, -1:] + 1
                out = model(input_ids=next_tokens_BS[:, s:s + 1], attention_mask=mask_BT, position_ids=pos_BT,
                            past_key_values=out.past_key_values, use_cache=True)
                logits.append(out.logits[:, -1])
        finally:
            recorder.remove()
    return recorder.calls, torch.stack(logits, dim=1)


@pytest.mark.parametrize("arch", ["qwen2", "gpt2"])
@pytest.mark.parametrize("lengths", [(6, 2, 4), (1, 1)])  # (1, 1): a one-token prefill is still a prefill
def test_positions_under_the_kv_cache(tiny, arch, lengths):
    model = tiny.model(arch, VOCAB)
    ids_BT, mask_BT = tiny.padded_batch(VOCAB, lengths=lengths)
    next_BS = torch.randint(2, VOCAB, (len(lengths), 3), generator=torch.Generator().manual_seed(1))
    clean_calls, clean_logits = decode_with_cache(tiny, model, ids_BT, mask_BT, next_BS, None)
    real_BT = mask_BT.bool()
    last_BT = torch.zeros_like(real_BT)
    last_BT[:, -1] = True
    everyone_B1 = torch.ones(len(lengths), 1, dtype=torch.bool)
    nobody_B1 = ~everyone_B1
    expected = {  # positions -> (changed in prefill, changed in each decode step)
        "last_prompt": (last_BT, nobody_B1),
        "prompt": (real_BT, nobody_B1),
        "generated": (torch.zeros_like(real_BT), everyone_B1),
        "all": (real_BT, everyone_B1),
    }
    for positions, (in_prefill, in_decode) in expected.items():
        calls, logits = decode_with_cache(tiny, model, ids_BT, mask_BT, next_BS, [add_at(tiny, positions)])
        assert torch.equal(changed_BT(calls[0], clean_calls[0]), in_prefill), positions
        for step in range(1, len(calls)):
            assert torch.equal(changed_BT(calls[step], clean_calls[step]), in_decode), (positions, step)
        if positions == "generated":  # the first new token comes from the untouched prefill
            assert torch.equal(logits[:, 0], clean_logits[:, 0])
        assert not torch.equal(logits[:, -1], clean_logits[:, -1]), positions


def test_per_row_lists_must_match_the_batch(tiny):
    model = tiny.model("qwen2", VOCAB)
    ids_BT, mask_BT = tiny.padded_batch(VOCAB, lengths=(3, 2))
    with pytest.raises(UserError, match="given for 3 rows, but the batch has 2"):
        with intervene(model, [[add_at(tiny, "all")], [], [add_at(tiny, "all")]]):
            tiny.forward(model, ids_BT, mask_BT)


def test_per_row_in_one_forward_equals_each_row_alone(tiny):
    model = tiny.model("llama", VOCAB)
    rows = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14]]
    per_row = [
        [add_at(tiny, "last_prompt")],
        [],
        [Intervention(op="steer", layer=tiny.LAYER, vector=DIRECTION, alpha=4.0, positions="prompt"), add_at(tiny, "all")],
    ]
    ids_BT, mask_BT = tiny.left_pad(rows, pad_id=1)
    with intervene(model, per_row):
        batched = tiny.forward(model, ids_BT, mask_BT)[:, -1]
    for r, row in enumerate(rows):
        ids_1T, mask_1T = tiny.left_pad([row], pad_id=1)
        with intervene(model, per_row[r]):
            alone = tiny.forward(model, ids_1T, mask_1T)[0, -1]
        torch.testing.assert_close(batched[r], alone, atol=1e-5, rtol=1e-5)
    clean = tiny.forward(model, ids_BT, mask_BT)[:, -1]
    assert torch.equal(batched[1], clean[1]) and not torch.equal(batched[0], clean[0])


def test_per_row_without_pads_edits_every_position_of_its_rows_only(tiny):
    # No pads: the call's every position is real, and a per-row edit must still reach all T
    # columns of its own rows and nothing of the others.
    model = tiny.model("qwen2", VOCAB)
    ids_BT, mask_BT = tiny.left_pad([[5, 6, 7], [8, 9, 10], [11, 12, 13]], pad_id=1)
    h_clean, _ = layer_output(tiny, model, ids_BT, mask_BT, None)
    h_steer, _ = layer_output(tiny, model, ids_BT, mask_BT, [[add_at(tiny, "all")], [], [add_at(tiny, "prompt")]])
    expected_BT = torch.tensor([[True] * 3, [False] * 3, [True] * 3])
    assert torch.equal(changed_BT(h_steer, h_clean), expected_BT)
    h_alone, _ = layer_output(tiny, model, ids_BT[:1], mask_BT[:1], [add_at(tiny, "all")])
    torch.testing.assert_close(h_steer[0], h_alone[0], atol=1e-5, rtol=1e-5)


def test_selections_of_prefill_decode_and_a_call_straddling_the_prompt_end(tiny):
    from tooldiff.interventions.positions import PositionTracker

    tracker = PositionTracker(tiny.model("qwen2", VOCAB))
    prefill_mask = torch.tensor([[1, 1, 1, 1, 1], [0, 1, 1, 1, 1]])
    prefill = tracker.positions_of_call({"input_ids": torch.ones(2, 5, dtype=torch.long),
                                         "attention_mask": prefill_mask})
    assert torch.equal(prefill.select("all"), prefill_mask.bool()) and prefill.select("generated") is False
    # A decoding step: constants, no tensor work.
    decode = tracker.positions_of_call({"input_ids": torch.ones(2, 1, dtype=torch.long),
                                        "attention_mask": torch.ones(2, 6, dtype=torch.long)})
    assert [decode.select(p) for p in ("last_prompt", "prompt", "generated", "all")] == [False, False, True, True]
    # After a cache crop to 3 tokens: columns 3 and 4 are prompt again, column 5 generated.
    straddle = tracker.positions_of_call({"input_ids": torch.ones(2, 3, dtype=torch.long),
                                          "attention_mask": torch.ones(2, 6, dtype=torch.long)})
    assert torch.equal(straddle.select("prompt"), torch.tensor([[True, True, False]] * 2))
    assert torch.equal(straddle.select("generated"), torch.tensor([[False, False, True]] * 2))
    assert torch.equal(straddle.select("last_prompt"), torch.tensor([[False, True, False]] * 2))
    assert straddle.select("all") is True


def test_a_layer_run_outside_a_model_call_is_refused(tiny):
    model = tiny.model("qwen2", VOCAB)
    ids_BT, mask_BT = tiny.padded_batch(VOCAB, lengths=(3, 2))
    layer = decoder_layers(model)[tiny.LAYER]
    with intervene(model, [add_at(tiny, "all")]):
        tiny.forward(model, ids_BT, mask_BT)  # a full call first: its positions must not leak
        with pytest.raises(UserError, match="outside a model forward call"):
            h_BTD = torch.zeros(1, 2, tiny.D_MODEL)
            rope = model.model.rotary_emb(h_BTD, torch.arange(2).unsqueeze(0))
            layer(h_BTD, position_embeddings=rope)
