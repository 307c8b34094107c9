"""Loss recovered: 1 for a splice that changes nothing, 0 for one that zeroes the layer."""

import pytest
import torch

from tooldiff.errors import UserError
from tooldiff.interventions import Intervention
from tooldiff.interventions.loss import loss_recovered

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def setup(tiny):
    tok = tiny.tokenizer()
    return tok, tiny.model("qwen2", len(tok)), tiny.crosscoder()


def _zero_crosscoder(tiny):
    """x_hat = 0: zero decoder, zero decoder bias, zero mean (its reconstruction IS zero-ablation)."""
    cc = tiny.crosscoder()
    with torch.no_grad():
        for W in cc.W_dec_LD:
            W.zero_()
        cc.b_dec_MD.zero_()
        cc.norm_mean_MD.zero_()
    return cc


@pytest.mark.parametrize("positions", ["all", "last_prompt"])
def test_identity_splice_recovers_everything(tiny, setup, positions):
    tok, model, cc = setup
    identity = [Intervention(op="reconstruct", layer=tiny.LAYER, add_error=True, positions=positions)]
    r = loss_recovered(model, tok, tiny.CORPUS, identity, cc, 0, positions=positions, batch_size=2)
    assert abs(r.kl_splice) < 1e-6 and r.kl_zero > 1e-3
    assert r.kl_recovered == pytest.approx(1.0, abs=1e-6)
    if positions == "all":
        assert r.n_tokens > 0 and r.ce_splice == pytest.approx(r.ce_clean, abs=1e-5)
        assert r.ce_recovered == pytest.approx(1.0, abs=1e-4)  # (a random model: CE_zero may even be lower)
    else:
        assert r.n_tokens == 0 and r.ce_recovered is None and r.n_positions == len(tiny.CORPUS)


@pytest.mark.parametrize("model_index", [0, 1])
def test_a_splice_that_zeroes_the_layer_recovers_nothing(tiny, setup, model_index):
    tok, model, _ = setup
    zero = [Intervention(op="reconstruct", layer=tiny.LAYER, positions="all")]
    r = loss_recovered(model, tok, tiny.CORPUS, zero, _zero_crosscoder(tiny), model_index, batch_size=3)
    assert r.ce_recovered == pytest.approx(0.0, abs=1e-5) and r.kl_recovered == pytest.approx(0.0, abs=1e-5)


def test_a_real_reconstruction_lands_between(tiny, setup):
    tok, model, cc = setup
    splice = [Intervention(op="reconstruct", layer=tiny.LAYER, positions="all")]
    r = loss_recovered(model, tok, tiny.CORPUS, splice, cc, 0)
    assert r.ce_splice != r.ce_clean and r.kl_splice > 0
    assert r.to_dict()["ce_recovered"] == r.ce_recovered


def test_bad_positions_are_a_user_error(tiny, setup):
    tok, model, cc = setup
    with pytest.raises(UserError, match="positions"):
        loss_recovered(model, tok, tiny.CORPUS, [Intervention(op="reconstruct", layer=tiny.LAYER)], cc,
                       positions="prompt")
