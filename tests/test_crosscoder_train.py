"""Sweep training: sparse math = dense reference, stacking, one data pass, outputs, errors."""

import sys

import pytest
import torch

from tooldiff.activations import BatchStream, load_activations
from tooldiff.activations.synthetic import planted_activations, write_harvest
from tooldiff.crosscoder import Crosscoder, CrosscoderConfig, train_sweep
from tooldiff.crosscoder.config import load_sweep, parse_sweep
from tooldiff.crosscoder.ddp import Dist
from tooldiff.crosscoder.sparsity import batchtopk_select
from tooldiff.crosscoder.stack import CrosscoderStack
from tooldiff.errors import UserError

# The machine is shared: one thread avoids OpenMP spin-contention on tiny matrices.
torch.set_num_threads(1)

D = 16


@pytest.fixture(scope="module")
def acts_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("acts") / "h"
    write_harvest(out, planted_activations(3000, D, n_shared=24, n_excl=4, seed=0), shard_rows=1000)
    return out


def perturbed(cfg: CrosscoderConfig, seed: int) -> Crosscoder:
    cc = Crosscoder.initialized(cfg)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in cc.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return cc


def dense_reference_loss(cc: Crosscoder, xn, dead_L=None):
    """The paper's method written densely: TopK(ReLU(pre)), full decode, L1 terms, AuxK."""
    cfg = cc.cfg
    pre = cc.preactivation(xn)
    vals, idx = pre.topk(cfg.k, dim=1)
    f = torch.zeros_like(pre).scatter(1, idx, torch.relu(vals))
    xhat = cc.decode(f, normalized=True)
    B, M, d = xn.shape
    loss = (xhat - xn).pow(2).mean()
    nA, nS = cfg.n_excl_a, cfg.n_shared
    l1 = lambda cols: f[:, cols].abs().sum() / B  # noqa: E731
    loss = loss + cfg.lambda_excl * (l1(slice(0, nA + nS)) + l1(slice(nA, None))) / 2
    loss = loss + cfg.lambda_shared * l1(slice(nA, nA + nS))
    if dead_L is not None and cfg.aux_k:
        resid = (xn - xhat).detach()
        masked = pre.masked_fill(~dead_L, float("-inf"))
        av, ai = masked.topk(cfg.aux_k, dim=1)
        fa = torch.zeros_like(pre).scatter(1, ai, torch.relu(av).nan_to_num(0.0, posinf=0.0, neginf=0.0))
        ehat = cc.decode(fa, normalized=True) - cc.b_dec_MD
        var = (resid - resid.mean(0)).pow(2).sum()
        loss = loss + cfg.aux_coef * (ehat - resid).pow(2).sum() / var
    return loss


def test_sparse_stacked_gradients_equal_the_dense_reference():
    cfgs = [
        CrosscoderConfig(d_model=D, dict_size=64, excl_a=0.1, excl_b=0.05, k=5, lambda_excl=0.01, lambda_shared=0.02,
                         aux_k=8, seed=1),
        CrosscoderConfig(d_model=D, dict_size=64, excl_a=0.1, excl_b=0.05, k=9, seed=2),
    ]
    ccs = [perturbed(c, i) for i, c in enumerate(cfgs)]
    stack = CrosscoderStack.from_crosscoders(ccs)
    xn = torch.randn(32, 2, D)
    dead = torch.zeros(2, 64, dtype=torch.bool)
    dead[:, 40:60] = True
    loss_C, parts, _ = stack.training_loss(xn, 32, dead, Dist())
    loss_C.sum().backward()
    for c, cc in enumerate(ccs):
        ref = dense_reference_loss(cc, xn, dead[c])
        ref.backward()
        assert torch.allclose(loss_C[c], ref, rtol=1e-5), (c, loss_C[c], ref)
        for m in range(2):
            assert torch.allclose(stack.W_enc[m].grad[c], cc.W_enc_LD[m].grad, atol=1e-6)
            assert torch.allclose(stack.W_dec[m].grad[c], cc.W_dec_LD[m].grad, atol=1e-6)
        assert torch.allclose(stack.b_enc_CL.grad[c], cc.b_enc_L.grad, atol=1e-6)
        assert torch.allclose(stack.b_dec_CMD.grad[c], cc.b_dec_MD.grad, atol=1e-6)
    assert parts["aux"][0] > 0 and parts["aux"][1] == 0  # only config 0 has AuxK


def test_batchtopk_selection_is_exact_even_for_saturated_rows():
    gen = torch.Generator().manual_seed(0)
    pre = torch.randn(16, 2, 200, generator=gen)
    pre[3] *= 50  # one row holds far more than 4k of the batch's top values
    score = torch.rand(2, 200, generator=gen) + 0.5
    k = torch.tensor([3, 6])
    idx, keep, thr = batchtopk_select(pre, score, k, 16, Dist())
    v = torch.relu(pre) * score
    for c in range(2):
        flat = v[:, c].reshape(-1)
        want = set(flat.topk(int(k[c]) * 16).indices.tolist())
        got = {int(b) * 200 + int(i) for b, i in zip(*torch.where(torch.zeros(16, 200, dtype=torch.bool).scatter(
            1, idx[:, c], keep[:, c])))}
        assert got == want
        assert keep[3, c].sum() > 4 * int(k.max())  # the saturated row really needed the wider search


def sweep(**train):
    return parse_sweep({
        "train": {"batch_size": 128, "checkpoint_every": 50, "eval_rows": 500, **train},
        "crosscoder": [
            {"name": "cc", "dict_size": 64, "k": 4, "steps": 120, "lr": 3e-3},
            {"name": "dfc", "dict_size": 64, "excl_a": 0.1, "excl_b": 0.1, "k": 4, "steps": 120, "lr": 3e-3,
             "aux_k": 8, "dead_tokens": 1000},
            {"name": "dfc-s1", "dict_size": 64, "excl_a": 0.1, "excl_b": 0.1, "k": 6, "steps": 80, "lr": 2e-3,
             "seed": 1, "lambda_excl": 1e-3},
            {"name": "btk", "dict_size": 64, "excl_a": 0.1, "excl_b": 0.1, "sparsity": "batchtopk", "k": 4,
             "steps": 120, "lr": 3e-3, "theta_momentum": 0.9},
            {"name": "l1", "dict_size": 64, "excl_a": 0.1, "excl_b": 0.1, "sparsity": "l1", "lambda_excl": 0.02,
             "steps": 120, "lr": 3e-3},
        ],
    })


def test_sweep_trains_in_one_data_pass_and_writes_everything(acts_dir, tmp_path, monkeypatch):
    calls = []
    original = BatchStream.indices
    monkeypatch.setattr(BatchStream, "indices", lambda self, step: calls.append(step) or original(self, step))
    metrics = train_sweep(acts_dir, sweep(), tmp_path / "out")
    assert calls == list(range(120))  # one batch per step, shared by all five configs
    assert set(metrics) == {"cc", "dfc", "dfc-s1", "btk", "l1"}
    for name, m in metrics.items():
        run = tmp_path / "out" / name
        assert m["fve"]["a"] > 0.3 and m["fve"]["b"] > 0.3, (name, m["fve"])
        assert 0 <= m["dead_frac"] <= 1 and m["l0"] > 0
        assert len(m["delta"]["hist"]["counts"]) == 20 and -1 <= m["shared_cosine"]["mean"] <= 1
        for png in ("delta_hist.png", "shared_cosine_hist.png"):
            assert (run / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert Crosscoder.load(run).info.step == m["step"] == (80 if name == "dfc-s1" else 120)
    steps = sorted(p.name for p in (tmp_path / "out" / "cc" / "checkpoints").iterdir())
    assert steps == ["step-00000100", "step-00000120"]  # every 50 steps, 2 kept
    assert sorted(p.name for p in (tmp_path / "out" / "dfc-s1" / "checkpoints").iterdir()) == ["step-00000050"]
    early = Crosscoder.load(tmp_path / "out" / "cc" / "checkpoints" / "step-00000100")
    assert early.info.step == 100 and early.info.data_hash == load_activations(acts_dir).data_hash
    assert metrics["btk"]["theta"] > 0
    # A rerun of a finished sweep trains nothing and returns the same metrics.
    calls.clear()
    assert train_sweep(acts_dir, sweep(), tmp_path / "out") == metrics and calls == []


def test_stacking_gives_the_same_result_as_training_alone(acts_dir, tmp_path):
    stacked = train_sweep(acts_dir, sweep(stack=True), tmp_path / "stacked")
    alone = train_sweep(acts_dir, sweep(stack=False), tmp_path / "alone")
    for name in stacked:
        for model in ("a", "b"):
            assert stacked[name]["fve"][model] == pytest.approx(alone[name]["fve"][model], abs=2e-3)
        a, b = Crosscoder.load(tmp_path / "stacked" / name), Crosscoder.load(tmp_path / "alone" / name)
        assert torch.allclose(a.W_dec_LD[0], b.W_dec_LD[0], atol=5e-3)


def test_trained_dfc_keeps_exclusivity_and_raw_space_reconstruction(tmp_path):
    # Big raw offset and scale: a normalization that is not undone on decode would wreck FVE.
    x = planted_activations(3000, D, n_shared=24, n_excl=4, seed=3) * 20 + 50
    write_harvest(tmp_path / "acts", x)
    cfg = {"name": "dfc", "dict_size": 64, "excl_a": 0.15, "excl_b": 0.15, "k": 4, "steps": 1000, "lr": 5e-3}
    metrics = train_sweep(tmp_path / "acts", parse_sweep({"train": {"batch_size": 128, "eval_rows": 500},
                                                           "crosscoder": [cfg]}), tmp_path / "out")["dfc"]
    assert metrics["fve"]["a"] > 0.85 and metrics["fve"]["b"] > 0.85
    cc = Crosscoder.load(tmp_path / "out" / "dfc")
    sample = x[:200]
    recon = cc.decode(cc.encode(sample))
    assert (recon - sample).pow(2).mean() < 0.15 * (sample - sample.mean(0)).pow(2).mean()
    assert cc.W_dec_LD[1].shape[0] == cc.cfg.n_shared + cc.cfg.n_excl_b  # still no B rows for A-excl latents
    f = cc.encode(sample)
    g = f.clone()
    g[:, cc.a_latents] = torch.rand_like(g[:, cc.a_latents]) * 10
    assert torch.equal(cc.decode(f)[:, 1], cc.decode(g)[:, 1])
    # The DFC found the planted exclusive features: A-excl decoders are A-only (Δ = 0 by construction),
    # and some A-exclusive latent actually fires.
    assert (f[:, cc.a_latents] > 0).any()


def test_sweep_file_errors_name_the_key(tmp_path, acts_dir):
    bad = tmp_path / "bad.toml"
    bad.write_text('[train]\nbatch_size = 64\n\n[[crosscoder]]\ndict_size = 32\nk = 4\nlamda_excl = 0.1\n')
    with pytest.raises(UserError, match=r"unknown key 'crosscoder\[0\]\.lamda_excl'"):
        load_sweep(bad)
    bad.write_text('[train]\nbatchsize = 64\n[[crosscoder]]\ndict_size = 32\n')
    with pytest.raises(UserError, match="unknown key 'train.batchsize'"):
        load_sweep(bad)
    bad.write_text('[[crosscoder]]\ndict_size = 32\nk = 40\n')
    with pytest.raises(UserError, match="exceeds dict_size"):
        load_sweep(bad)
    wrong_d = parse_sweep({"crosscoder": [{"name": "x", "d_model": D + 1, "dict_size": 32}]})
    with pytest.raises(UserError, match=f"d_model={D + 1} does not match the activations' d={D}"):
        train_sweep(acts_dir, wrong_d, tmp_path / "o")


def test_a_changed_sweep_does_not_resume_into_the_old_directory(acts_dir, tmp_path):
    one = {"train": {"batch_size": 128, "eval_rows": 200}, "crosscoder": [{"name": "a", "dict_size": 32, "steps": 5}]}
    train_sweep(acts_dir, parse_sweep(one), tmp_path / "o")
    one["crosscoder"][0]["k"] = 2
    with pytest.raises(UserError, match="different sweep"):
        train_sweep(acts_dir, parse_sweep(one), tmp_path / "o")


def test_cli_train_unknown_key_is_one_line_exit_2(tmp_path, acts_dir, monkeypatch, capsys):
    from tooldiff.cli import main

    bad = tmp_path / "bad.toml"
    bad.write_text("[[crosscoder]]\ndict_size = 32\nsparsty = 'topk'\n")
    monkeypatch.setattr(sys, "argv", ["tooldiff", "train", "--acts", str(acts_dir), "--config", str(bad), "--out",
                                      str(tmp_path / "o")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [f"error: {bad}: unknown key 'crosscoder[0].sparsty'"]


def test_stacked_adam_matches_torch_adam_and_clips_each_config_alone():
    from tooldiff.crosscoder.optim import StackedAdam

    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(2, 5, 3))
    ref = torch.nn.Parameter(w.detach().clone())
    ours = StackedAdam([w], 1e-2, torch.tensor([0.0, 0.0]), (0.9, 0.999), 1e-8)
    theirs = torch.optim.Adam([ref], lr=1e-2)
    for _ in range(4):
        g = torch.randn(2, 5, 3)
        w.grad, ref.grad = g.clone(), g.clone()
        ours.step()
        theirs.step()
    assert torch.allclose(w, ref, atol=1e-6)
    # config 1's huge gradient is clipped to norm 1; config 0's small one is untouched
    clipped = StackedAdam([w], 1e-2, torch.tensor([1.0, 1.0]), (0.9, 0.999), 1e-8)
    w.grad = torch.cat([torch.full((1, 5, 3), 1e-3), torch.full((1, 5, 3), 1e3)])
    norms = clipped.step()
    assert torch.allclose(norms, torch.tensor([1e-3 * 15**0.5, 1e3 * 15**0.5]))
    assert torch.allclose(w.grad.flatten(1).norm(dim=1), torch.tensor([1e-3 * 15**0.5, 1.0]), rtol=1e-4)


def tied_pair(ratio: float) -> tuple[CrosscoderStack, CrosscoderStack]:
    """An untied DFC whose shared B rows equal ratio x its A rows, and the same weights tied."""
    untied_cfg = CrosscoderConfig(d_model=D, dict_size=40, excl_a=0.1, excl_b=0.1, k=6, aux_k=4, seed=3)
    cc = perturbed(untied_cfg, 0)
    nA, nS = untied_cfg.n_excl_a, untied_cfg.n_shared
    with torch.no_grad():
        cc.W_dec_LD[1][:nS] = cc.W_dec_LD[0][nA:] * ratio
    tied = Crosscoder(untied_cfg.model_copy(update={"tie_shared": True}))
    tied.load_state_dict(cc.state_dict())
    stacks = CrosscoderStack.from_crosscoders([cc]), CrosscoderStack.from_crosscoders([tied])
    stacks[1].set_normalization_scale(torch.tensor([ratio, 1.0]))
    return stacks


def test_tied_shared_latents_are_one_parameter_with_the_summed_gradient():
    ratio = 1.7
    untied, tied = tied_pair(ratio)
    nA, nS = tied.tied_rows
    xn = torch.randn(64, 2, D)
    dead = torch.zeros(1, 40, dtype=torch.bool)
    dead[:, 30:] = True
    for stack in (untied, tied):
        loss_C, _, _ = stack.training_loss(xn, 64, dead, Dist())
        loss_C.sum().backward()
        stack.loss = loss_C.detach()
    assert torch.allclose(untied.loss, tied.loss, rtol=1e-6)
    # One shared row, used by both models: its gradient is A's plus ratio x B's.
    want = untied.W_dec[0].grad[:, nA:] + ratio * untied.W_dec[1].grad[:, :nS]
    assert torch.allclose(tied.W_dec[0].grad[:, nA:], want, atol=1e-6)
    assert not tied.W_dec[1].grad[:, :nS].any()  # B's own shared rows are never used
    assert torch.equal(tied.W_dec[1].grad[:, nS:], untied.W_dec[1].grad[:, nS:])


def gated_shift_acts(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fine-tune in miniature: both models share every feature direction, and A adds 3·c₀·u
    whenever shared feature 0 is on (c₀ its coefficient). Returns x_NMD and the unit u."""
    gen = torch.Generator().manual_seed(seed)
    dirs = torch.nn.functional.normalize(torch.randn(12, D, generator=gen), dim=1)
    u = torch.nn.functional.normalize(torch.randn(D, generator=gen), dim=0)
    pick = torch.rand(n, 12, generator=gen).argsort(dim=1)[:, :3]
    coef = torch.zeros(n, 12).scatter_(1, pick, torch.rand(n, 3, generator=gen) * 4 + 1)
    x_B = coef @ dirs + 0.01 * torch.randn(n, D, generator=gen)
    return torch.stack([x_B + 3 * coef[:, :1] * u, x_B], dim=1), u


def test_tied_dfc_puts_a_gated_shift_into_an_exclusive_latent_that_untied_shared_latents_absorb(tmp_path):
    """The rank1 positive control in miniature (why `tie_shared` exists): an untied shared latent
    can carry the shift on its A side; a tied one cannot, so an A-exclusive latent must."""
    x, u = gated_shift_acts(6000, seed=0)
    write_harvest(tmp_path / "acts", x)
    base = {"dict_size": 48, "excl_a": 0.125, "excl_b": 0.125, "k": 3, "steps": 1500, "lr": 5e-3}
    configs = [{"name": "untied", **base}, {"name": "tied", "tie_shared": True, **base}]
    train_sweep(tmp_path / "acts", parse_sweep({"train": {"batch_size": 128, "eval_rows": 500},
                                                "crosscoder": configs}), tmp_path / "out")
    sample, shift = x[:1000], (x[:1000, 0] - x[:1000, 1]) @ u
    captured = {}
    for name in ("untied", "tied"):
        cc = Crosscoder.load(tmp_path / "out" / name)
        f = cc.encode_single(sample[:, 0], 0)[:, cc.a_latents]
        along_u = torch.stack([cc.decoder_vector(i, 0) @ u for i in range(cc.a_latents.stop)])
        captured[name] = float((f * along_u).sum(0).max() / shift.sum())  # the best single latent's share
    shared = Crosscoder.load(tmp_path / "out" / "tied")
    nA, nS = shared.cfg.n_excl_a, shared.cfg.n_shared
    raw_a = shared.W_dec_LD[0][nA:] * shared.norm_scale_M[0]
    assert torch.allclose(raw_a, shared.W_dec_LD[1][:nS] * shared.norm_scale_M[1], atol=1e-5)
    assert captured["tied"] > 0.9, captured
    assert captured["untied"] < captured["tied"] - 0.2, captured


def test_shipped_sweeps_parse_and_the_positive_control_tests_every_dfc_kind_of_the_demo():
    from tooldiff import configs
    from tooldiff.demo import DEMO_SWEEP, POSITIVE_SWEEP
    from tooldiff.experiment.positive import crosscoder_kind

    names = [n for n in configs.shipped_names() if n.startswith("sweep-")]
    assert "sweep-demo" in names and "sweep-paper" in names
    for name in names:
        assert load_sweep(name) == load_sweep(configs.shipped(name))
    kinds = lambda path: {crosscoder_kind(c.display_name()) for c in load_sweep(path).crosscoder if c.n_excl_a}  # noqa: E731
    assert kinds(DEMO_SWEEP) <= kinds(POSITIVE_SWEEP)


def _stack_and_batch(precision: str = "fp32", kernels: str = "sparse"):
    cfgs = [CrosscoderConfig(d_model=D, dict_size=64, excl_a=0.1, excl_b=0.05, k=5, lambda_excl=0.01, aux_k=8, seed=s)
            for s in (1, 2)]
    stack = CrosscoderStack.from_crosscoders([perturbed(c, i) for i, c in enumerate(cfgs)])
    stack.set_compute(precision, kernels)
    return stack, torch.randn(32, 2, D, generator=torch.Generator().manual_seed(3))


def test_dense_kernels_equal_the_sparse_ones():
    """The GPU kernels (dense products) give the sparse ones' losses and gradients, AuxK included."""
    results = []
    for kernels in ("sparse", "dense"):
        stack, xn = _stack_and_batch(kernels=kernels)
        dead = torch.zeros(2, 64, dtype=torch.bool)
        dead[:, 40:60] = True
        loss_C, parts, _ = stack.training_loss(xn, 32, dead, Dist())
        loss_C.sum().backward()
        results.append((loss_C.detach(), parts["aux"], [p.grad.clone() for p in stack.parameters()]))
    (loss_s, aux_s, grads_s), (loss_d, aux_d, grads_d) = results
    assert torch.allclose(loss_s, loss_d, rtol=1e-5) and torch.allclose(aux_s, aux_d, rtol=1e-5)
    assert aux_s.gt(0).all()
    for sparse_g, dense_g in zip(grads_s, grads_d):
        assert torch.allclose(sparse_g, dense_g, atol=1e-6), (sparse_g - dense_g).abs().max()


def test_bf16_selection_matches_fp32_within_bf16_rounding():
    """The one-matmul bf16 encoder (zeros where a model owns no latent) = the per-slice fp32 one."""
    stack, xn = _stack_and_batch("bf16")
    pre_bf16 = stack.preactivation(xn).float()
    stack.set_compute("fp32")
    pre_fp32 = stack.preactivation(xn)
    assert pre_bf16.shape == pre_fp32.shape
    assert (pre_bf16 - pre_fp32).norm() / pre_fp32.norm() < 1e-2
    stack.set_compute("bf16", "dense")
    loss_C, _, _ = stack.training_loss(xn, 32, None, Dist())
    loss_C.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in stack.parameters())
    assert loss_C.dtype == torch.float32


def test_precision_auto_is_bf16_on_cuda_and_fp32_elsewhere():
    from tooldiff.crosscoder.precision import resolve_precision

    assert resolve_precision("auto", "cuda") == "bf16"
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("tf32", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError):
        resolve_precision("fp8", "cuda")
    with pytest.raises(UserError, match="precision"):
        parse_sweep({"train": {"precision": "fp16"}, "crosscoder": [{"dict_size": 8}]})
