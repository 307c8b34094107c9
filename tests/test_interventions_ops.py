"""The math of each op, on hidden states directly (no model needed beyond binding)."""

import pytest
import torch

from tooldiff.interventions import Intervention, bind
from tooldiff.interventions import ops

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model(tiny):
    return tiny.model("llama", vocab_size=64)


@pytest.fixture(scope="module")
def cc(tiny):
    return tiny.crosscoder()


@pytest.fixture()
def h_ND(tiny):
    return torch.randn(6, tiny.D_MODEL, generator=torch.Generator().manual_seed(3)) * 4


def edit(tiny, model, cc, model_index=0, **fields):
    return bind(Intervention(layer=tiny.LAYER, **fields), model, cc, model_index).edit


def test_identities_are_exact(tiny, model, cc, h_ND):
    assert torch.equal(edit(tiny, model, cc, op="steer", feature=[3, 4, 5], alpha=1.0)(h_ND), h_ND)
    assert torch.equal(edit(tiny, model, cc, op="add", vector=[0.0] * tiny.D_MODEL, dose=2.0)(h_ND), h_ND)
    assert torch.equal(edit(tiny, model, cc, op="add", feature=3, dose=0.0)(h_ND), h_ND)
    assert torch.equal(edit(tiny, model, cc, op="steer", vector=torch.randn(tiny.D_MODEL), alpha=1.0)(h_ND), h_ND)


def test_ablating_a_latent_that_does_not_fire_is_the_identity(tiny, model, cc, h_ND):
    silent = 20
    with torch.no_grad():
        cc.b_enc_L[silent] = -1e4  # can never fire
    try:
        assert (cc.encode_single(h_ND, 0)[:, silent] == 0).all()
        assert torch.equal(edit(tiny, model, cc, op="ablate", feature=silent)(h_ND), h_ND)
    finally:
        with torch.no_grad():
            cc.b_enc_L[silent] = 0.0


def test_latent_ops_follow_their_formulas(tiny, model, cc, h_ND):
    latents = [3, 40]
    with torch.no_grad():
        cc.b_enc_L[latents] = 50.0  # always fire, so every op has something to act on
    try:
        f_NS = cc.encode_single(h_ND, 0)[:, latents]
        d_SD = torch.stack([cc.decoder_vector(i, 0) for i in latents])
        assert (f_NS > 0).all()
        got = edit(tiny, model, cc, op="steer", feature=latents, alpha=6.0)(h_ND)
        torch.testing.assert_close(got, h_ND + 5.0 * f_NS @ d_SD)
        got = edit(tiny, model, cc, op="ablate", feature=latents)(h_ND)
        torch.testing.assert_close(got, h_ND - f_NS @ d_SD)
        got = edit(tiny, model, cc, op="clamp", feature=latents, value=2.5)(h_ND)
        torch.testing.assert_close(got, h_ND + (2.5 - f_NS) @ d_SD)
    finally:
        with torch.no_grad():
            cc.b_enc_L[latents] = 0.0


def test_add_is_relative_to_each_rows_norm(tiny, model, cc, h_ND):
    got = edit(tiny, model, cc, op="add", feature=3, dose=0.5)(h_ND)
    u_D = cc.decoder_vector(3, 0) / cc.decoder_vector(3, 0).norm()
    delta_ND = got - h_ND
    torch.testing.assert_close(delta_ND, 0.5 * h_ND.norm(dim=1, keepdim=True) * u_D)
    # A's exclusive direction added into the base: same formula, A's decoder row.
    got_b = edit(tiny, model, cc, 1, op="add", feature=2, dose=1.0, from_model=0)(h_ND)
    u_A = cc.decoder_vector(2, 0) / cc.decoder_vector(2, 0).norm()
    torch.testing.assert_close(got_b - h_ND, h_ND.norm(dim=1, keepdim=True) * u_A)


def test_vector_ops_act_on_the_projection(tiny, model, cc, h_ND):
    v_D = torch.randn(tiny.D_MODEL, generator=torch.Generator().manual_seed(9)) * 7
    u_D = v_D / v_D.norm()
    ablated = edit(tiny, model, cc, op="ablate", vector=v_D)(h_ND)
    torch.testing.assert_close(ablated @ u_D, torch.zeros(len(h_ND)), atol=1e-5, rtol=0)
    clamped = edit(tiny, model, cc, op="clamp", vector=v_D, value=3.0)(h_ND)
    torch.testing.assert_close(clamped @ u_D, torch.full((len(h_ND),), 3.0))
    steered = edit(tiny, model, cc, op="steer", vector=v_D, alpha=4.0)(h_ND)
    torch.testing.assert_close(steered @ u_D, 4.0 * (h_ND @ u_D))


def test_reconstruct_with_and_without_error(tiny, model, cc, h_ND):
    x_hat_ND = cc.decode_single(cc.encode_single(h_ND, 0), 0).detach()
    torch.testing.assert_close(edit(tiny, model, cc, op="reconstruct")(h_ND), x_hat_ND)
    spliced = edit(tiny, model, cc, op="reconstruct", add_error=True)(h_ND)
    assert (spliced - h_ND).abs().max() <= 1e-5
    assert (x_hat_ND - h_ND).abs().max() > 0.1  # the splice really had an error to add back


def test_mismatched_normalization_skips_the_statistics(tiny, model, cc, h_ND):
    mismatched = edit(tiny, model, cc, op="reconstruct", normalization="mismatched")(h_ND)
    expect = cc.decode_single(cc.encode_single(h_ND, 0, normalized=True), 0, normalized=True).detach()
    torch.testing.assert_close(mismatched, expect)
    assert (mismatched - edit(tiny, model, cc, op="reconstruct")(h_ND)).abs().max() > 0.1


def test_edit_keeps_dtype_of_the_model(tiny, model, cc, h_ND):
    h_bf16 = h_ND.to(torch.bfloat16)
    out = edit(tiny, model, cc, op="reconstruct", add_error=True)(h_bf16)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), h_bf16.float(), atol=0.05, rtol=0.01)


def test_unit_direction_of_zero_is_zero():
    assert torch.equal(ops.unit_direction(torch.zeros(4)), torch.zeros(4))


@pytest.mark.parametrize("sparsity, theta", [("topk", 0.0), ("batchtopk", 0.0), ("batchtopk", 0.3), ("l1", 0.0)])
@pytest.mark.parametrize("model_index", [0, 1])
@pytest.mark.parametrize("negative_bias", [False, True])  # the other model's latents can or cannot rank
def test_latent_reader_matches_encode_single(tiny, sparsity, theta, model_index, negative_bias):
    from tooldiff.crosscoder.config import CrosscoderConfig
    from tooldiff.crosscoder.model import CheckpointInfo, Crosscoder
    from tooldiff.interventions.readout import latent_reader

    extra = {"lambda_excl": 0.1} if sparsity == "l1" else {}
    cfg = CrosscoderConfig(d_model=tiny.D_MODEL, dict_size=80, excl_a=0.1, excl_b=0.1, k=8, sparsity=sparsity, seed=4,
                           **extra)
    cc = Crosscoder.initialized(cfg, CheckpointInfo(layer=tiny.LAYER))
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        cc.set_normalization(torch.randn(2, tiny.D_MODEL, generator=gen), torch.tensor([2.0, 3.0]))
        bias_L = torch.randn(80, generator=gen) * 0.3
        cc.b_enc_L.copy_(-bias_L.abs() if negative_bias else bias_L)
        cc.theta.fill_(theta)
    h_ND = torch.randn(200, tiny.D_MODEL, generator=gen) * 3
    span = cc.model_latents(model_index)
    latents = [span.start, span.start + 5, 40, span.stop - 1]  # exclusive and shared latents
    with torch.no_grad():
        want_NS = cc.encode_single(h_ND, model_index)[:, latents]
    got_NS = latent_reader(cc, model_index, latents)(h_ND)
    assert (want_NS > 0).any() and (want_NS == 0).any()  # both sides of the sparsity rule are tested
    torch.testing.assert_close(got_NS, want_NS, atol=1e-5, rtol=1e-5)
