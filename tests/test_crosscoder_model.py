"""The Crosscoder module: exclusivity by construction, normalization, checkpoints."""

import json

import pytest
import torch

from tooldiff.crosscoder import CheckpointInfo, Crosscoder, CrosscoderConfig
from tooldiff.errors import UserError

torch.set_num_threads(1)

D_MODEL = 12


def dfc(**kw) -> Crosscoder:
    cfg = CrosscoderConfig(d_model=D_MODEL, dict_size=40, excl_a=0.1, excl_b=0.15, k=6, **kw)
    cc = Crosscoder.initialized(cfg)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in cc.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    cc.set_normalization(torch.randn(2, D_MODEL, generator=gen) * 5, torch.tensor([3.0, 0.5]))
    return cc


def test_partition_layout_and_groups():
    cc = dfc()
    assert (cc.cfg.n_excl_a, cc.cfg.n_shared, cc.cfg.n_excl_b) == (4, 30, 6)
    assert (cc.a_latents, cc.shared_latents, cc.b_latents) == (slice(0, 4), slice(4, 34), slice(34, 40))
    assert [cc.latent_group(i) for i in (0, 3, 4, 33, 34, 39)] == ["a_excl"] * 2 + ["shared"] * 2 + ["b_excl"] * 2
    with pytest.raises(UserError):
        cc.latent_group(40)


def test_exclusive_latents_have_no_parameters_of_the_other_model():
    cc = dfc()
    # A's encoder/decoder cover [A-excl | shared], B's cover [shared | B-excl]: nothing else exists.
    assert cc.W_enc_LD[0].shape == cc.W_dec_LD[0].shape == (34, D_MODEL)
    assert cc.W_enc_LD[1].shape == cc.W_dec_LD[1].shape == (36, D_MODEL)
    n_params = sum(p.numel() for p in cc.parameters())
    assert n_params == (34 + 36) * D_MODEL * 2 + 40 + 2 * D_MODEL
    for i in range(4):
        assert torch.count_nonzero(cc.decoder_vector(i, model=1)) == 0
        assert torch.count_nonzero(cc.decoder_vector(i, model=0)) > 0
    for i in range(34, 40):
        assert torch.count_nonzero(cc.decoder_vector(i, model=0)) == 0


def test_changing_an_a_exclusive_latent_never_changes_b_reconstruction():
    cc = dfc()
    f = torch.relu(torch.randn(16, 40))
    g = f.clone()
    g[:, cc.a_latents] = torch.rand(16, 4) * 100  # arbitrary new A-exclusive activations
    before, after = cc.decode(f), cc.decode(g)
    assert torch.equal(before[:, 1], after[:, 1])
    assert not torch.allclose(before[:, 0], after[:, 0])  # ... while A's reconstruction does move
    h = f.clone()
    h[:, cc.b_latents] += 7.0
    assert torch.equal(cc.decode(f)[:, 0], cc.decode(h)[:, 0])
    # and B's input never reaches A-exclusive latents' pre-activation
    x = torch.randn(8, 2, D_MODEL)
    y = x.clone()
    y[:, 1] += torch.randn(8, D_MODEL) * 10
    assert torch.equal(cc.preactivation(x)[:, cc.a_latents], cc.preactivation(y)[:, cc.a_latents])


def test_encode_applies_and_decode_undoes_the_normalization():
    cc = dfc()
    x = torch.randn(10, 2, D_MODEL) * 4 + 20
    xn = torch.stack([(x[:, m] - cc.norm_mean_MD[m]) / cc.norm_scale_M[m] for m in range(2)], dim=1)
    assert torch.allclose(cc.encode(x), cc.encode(xn, normalized=True), atol=1e-5)
    f = cc.encode(x)
    raw, norm = cc.decode(f), cc.decode(f, normalized=True)
    for m in range(2):
        assert torch.allclose(raw[:, m], norm[:, m] * cc.norm_scale_M[m] + cc.norm_mean_MD[m], atol=1e-5)


def test_identity_dictionary_round_trips_raw_activations_exactly():
    """A dictionary of ±basis vectors per model reconstructs any input: decode(encode(x)) = x in raw space."""
    d = 5
    cfg = CrosscoderConfig(d_model=d, dict_size=4 * d, k=2 * d)
    cc = Crosscoder(cfg)
    eye = torch.eye(d)
    with torch.no_grad():
        # latents [0, 2d) read and write model A (+e_i, -e_i); [2d, 4d) model B.
        cc.W_enc_LD[0][: 2 * d] = torch.cat([eye, -eye])
        cc.W_dec_LD[0][: 2 * d] = torch.cat([eye, -eye])
        cc.W_enc_LD[1][2 * d :] = torch.cat([eye, -eye])
        cc.W_dec_LD[1][2 * d :] = torch.cat([eye, -eye])
    mean, scale = torch.randn(2, d) * 30, torch.tensor([7.0, 0.25])
    cc.set_normalization(mean, scale)
    x = torch.randn(64, 2, d) * scale.view(1, 2, 1) + mean
    assert torch.allclose(cc.decode(cc.encode(x)), x, atol=1e-4)
    # The latent activations are the normalized coordinates, not the raw ones.
    f = cc.encode(x)
    assert torch.allclose(f[:, :d] - f[:, d : 2 * d], (x[:, 0] - mean[0]) / scale[0], atol=1e-5)


def test_encode_single_treats_the_missing_model_as_its_mean():
    cc = dfc()
    x = torch.randn(6, 2, D_MODEL) * 3
    x_mean_b = x.clone()
    x_mean_b[:, 1] = cc.norm_mean_MD[1]
    assert torch.allclose(cc.encode_single(x[:, 0], model=0), cc.encode(x_mean_b), atol=1e-5)
    f = cc.encode(x)
    assert torch.allclose(cc.decode_single(f, 1), cc.decode(f)[:, 1])


def test_decoder_vector_raw_space_scaling():
    cc = dfc()
    latent = 10  # shared
    assert torch.allclose(cc.decoder_vector(latent, 1, raw=True), cc.decoder_vector(latent, 1, raw=False) * 0.5)
    # decoding a single unit latent moves raw B activations by exactly that vector (plus the bias)
    f = torch.zeros(1, 40)
    f[0, latent] = 1.0
    moved = cc.decode(f)[0, 1] - cc.decode(torch.zeros(1, 40))[0, 1]
    assert torch.allclose(moved, cc.decoder_vector(latent, 1), atol=1e-5)


def test_topk_and_batchtopk_inference_sparsity():
    cc = dfc()
    x = torch.randn(32, 2, D_MODEL)
    assert ((cc.encode(x) > 0).sum(1) <= 6).all()
    bt = dfc(sparsity="batchtopk")
    with torch.no_grad():
        pre = torch.relu(bt.preactivation(torch.randn(32, 2, D_MODEL)))
        v = pre * bt.batchtopk_score_L()
        bt.theta.fill_(float(v[v > 0].median()))
        f = bt.activate(bt.preactivation(torch.randn(32, 2, D_MODEL)))
    kept_v = (f * bt.batchtopk_score_L())[f > 0]
    assert (kept_v > bt.theta).all()


def test_save_load_round_trip(tmp_path):
    cc = dfc()
    cc.info = CheckpointInfo(models=["rl", "base"], layer=3, positions="decision", data_hash="abc", step=9)
    cc.save(tmp_path / "cc")
    back = Crosscoder.load(tmp_path / "cc")
    x = torch.randn(5, 2, D_MODEL)
    assert torch.equal(back.decode(back.encode(x)), cc.decode(cc.encode(x)))
    assert back.info.layer == 3 and back.info.data_hash == "abc" and back.info.step == 9
    assert torch.equal(back.norm_scale_M, cc.norm_scale_M)


def test_corrupt_or_mismatched_checkpoint_is_a_user_error(tmp_path):
    cc = dfc()
    cc.save(tmp_path / "cc")
    weights = tmp_path / "cc" / "crosscoder.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-5] ^= 0xFF
    weights.write_bytes(bytes(blob))
    with pytest.raises(UserError, match="corrupt"):
        Crosscoder.load(tmp_path / "cc")
    cc.save(tmp_path / "cc2")
    meta = json.loads((tmp_path / "cc2" / "config.json").read_text())
    meta["config"]["dict_size"] = 48
    meta.pop("weights_sha256")
    (tmp_path / "cc2" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="shape"):
        Crosscoder.load(tmp_path / "cc2")
    with pytest.raises(UserError, match="not a crosscoder checkpoint"):
        Crosscoder.load(tmp_path / "nothing")


def test_bad_input_shapes_are_user_errors():
    cc = dfc()
    with pytest.raises(UserError, match="expected"):
        cc.encode(torch.randn(3, 2, D_MODEL + 1))
    with pytest.raises(UserError, match="expected"):
        cc.decode(torch.randn(3, 41))
