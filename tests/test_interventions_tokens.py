"""Per-token readings: hidden states equal the unpadded prompt's, latents equal `encode_single`'s,
and the logit lens is the final norm then the unembedding."""

import torch

from tooldiff.hf import decoder_layers, final_norm, layer_hidden
from tooldiff.interventions.tokens import layer_hiddens, logit_lens, read_prompt, read_tokens


def test_hiddens_of_a_padded_batch_are_each_prompts_own(tiny):
    model = tiny.model("qwen2", 300)
    prompts = [[5, 9, 13, 2, 7], [11], [3, 3, 8]]
    got = layer_hiddens(model, tiny.LAYER, prompts, pad_id=1, batch_size=2)
    for ids, h_TD in zip(prompts, got):
        seen = []
        handle = decoder_layers(model)[tiny.LAYER].register_forward_hook(lambda m, a, out: seen.append(layer_hidden(out)))
        with torch.no_grad():
            model(input_ids=torch.tensor([ids]))
        handle.remove()
        assert h_TD.shape == (len(ids), tiny.D_MODEL)
        torch.testing.assert_close(h_TD, seen[0][0], atol=1e-5, rtol=1e-5)


def test_latents_at_every_token_are_encode_singles_and_zero_without_an_encoder(tiny):
    cc = tiny.crosscoder()
    h_ND = torch.randn(50, tiny.D_MODEL) * 3
    a_excl, shared, b_excl = 0, cc.shared_latents.start + 2, cc.dict_size - 1
    latents = [a_excl, shared, b_excl]
    for model in (0, 1):
        f_NS = read_tokens(cc, model, h_ND, latents, chunk=16)
        reference_NL = cc.encode_single(h_ND, model)
        owned = cc.model_latents(model)
        for s, i in enumerate(latents):
            want = reference_NL[:, i] if owned.start <= i < owned.stop else torch.zeros(50)
            torch.testing.assert_close(f_NS[:, s], want, atol=1e-5, rtol=1e-5)
    assert (read_tokens(cc, 0, h_ND, [shared]) > 0).any()  # not a test that zeros pass


def test_read_prompt_reads_the_models_layer(tiny):
    model, cc = tiny.model("qwen2", 300), tiny.crosscoder()
    ids = [4, 8, 15, 16, 23, 42]
    h_TD = layer_hiddens(model, tiny.LAYER, [ids], pad_id=0)[0]
    latents = list(range(cc.dict_size))
    torch.testing.assert_close(read_prompt(model, cc, 0, tiny.LAYER, ids, latents)[:, :8],
                               cc.encode_single(h_TD, 0)[:, :8], atol=1e-5, rtol=1e-5)


def test_logit_lens_is_the_final_norm_then_the_unembedding(tiny):
    model = tiny.model("qwen2", 300)
    directions_SD = torch.randn(3, tiny.D_MODEL)
    lens = logit_lens(model, directions_SD, k=4)
    with torch.no_grad():
        want_SV = model.get_output_embeddings()(final_norm(model)(directions_SD))
    torch.testing.assert_close(lens.logits_SV, want_SV)
    for s in range(3):
        assert [t for t, _ in lens.promoted[s]] == want_SV[s].topk(4).indices.tolist()
        assert [t for t, _ in lens.suppressed[s]] == (-want_SV[s]).topk(4).indices.tolist()
        assert lens.promoted[s][0][1] == float(want_SV[s].max())
