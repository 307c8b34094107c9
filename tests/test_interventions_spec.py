"""Bad interventions fail early with one clear UserError; good ones round-trip through JSON."""

import math

import pytest
import torch

from test_interventions_support import D_MODEL, LAYER, N_LAYERS, tiny_crosscoder, tiny_model
from tooldiff.errors import UserError
from tooldiff.interventions import Intervention, intervene, parse_interventions

torch.set_num_threads(1)


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(op="amplify", layer=1, feature=3, alpha=2.0), "op"),
        (dict(op="steer", layer=1, feature=3, alpha=math.nan), "alpha must be finite"),
        (dict(op="steer", layer=1, feature=3, alpha=math.inf), "alpha must be finite"),
        (dict(op="steer", layer=1, feature=3, alpha=1e6), "exceeds the limit"),
        (dict(op="add", layer=1, feature=3, dose=-math.inf), "dose must be finite"),
        (dict(op="add", layer=1, feature=3, dose=1e4), "exceeds the limit"),
        (dict(op="clamp", layer=1, feature=3, value=math.nan), "value must be finite"),
        (dict(op="steer", layer=1, feature=3), "needs alpha"),
        (dict(op="add", layer=1, feature=3, alpha=2.0), "alpha is not used"),
        (dict(op="steer", layer=1, alpha=2.0), "needs a feature"),
        (dict(op="steer", layer=1, feature=3, vector=[1.0] * 4, alpha=2.0), "either feature or vector"),
        (dict(op="add", layer=1, vector=[1.0, math.nan], dose=1.0), "NaN or inf"),
        (dict(op="add", layer=1, feature=[1, 2], dose=1.0), "one feature"),
        (dict(op="steer", layer=1, feature=-2, alpha=2.0), ">= 0"),
        (dict(op="steer", layer=-1, feature=2, alpha=2.0), "layer must be >= 0"),
        (dict(op="steer", layer=True, feature=2, alpha=2.0), "expected a number"),
        (dict(op="steer", layer=1, feature=2, alpha=2.0, strength=3), "unknown key 'strength'"),
        (dict(op="steer", layer=1, feature=2, alpha=2.0, positions="middle"), "positions"),
        (dict(op="reconstruct", layer=1, feature=2), "neither feature nor vector"),
        (dict(op="steer", layer=1, feature=2, alpha=2.0, add_error=True), "add_error only"),
        (dict(op="add", layer=1, feature=2, dose=1.0, from_model=2), "from_model must be 0"),
    ],
)
def test_bad_specs_raise_user_error(fields, message):
    with pytest.raises(UserError, match=message):
        Intervention(**fields)


def test_json_parsing_and_round_trip():
    specs = parse_interventions('[{"op": "steer", "layer": 1, "feature": [4, 5], "alpha": 6},'
                                ' {"op": "add", "layer": 0, "vector": [0, 1], "dose": 0.5, "positions": "all"}]')
    assert specs[0].feature == (4, 5) and specs[1].vector == (0.0, 1.0)
    assert parse_interventions([s.to_json() for s in specs]) == specs
    with pytest.raises(UserError, match="bad steering JSON"):
        parse_interventions("[{op: steer}")
    with pytest.raises(UserError, match="must be a JSON object"):
        parse_interventions([3])
    with pytest.raises(UserError, match="alpha must be finite"):
        parse_interventions('[{"op": "steer", "layer": 1, "feature": 2, "alpha": NaN}]')


def test_vector_from_tensor_and_hashable():
    a = Intervention(op="add", layer=1, vector=torch.arange(3.0), dose=1.0)
    b = Intervention(op="add", layer=1, vector=[0, 1, 2], dose=1)
    assert a == b and hash(a) == hash(b)


@pytest.fixture(scope="module")
def model():
    return tiny_model("qwen2", vocab_size=64)


@pytest.mark.parametrize(
    "spec, model_index, message",
    [
        (dict(op="steer", layer=N_LAYERS, vector=[1.0] * D_MODEL, alpha=2.0), 0, "layer 3 is out of range"),
        (dict(op="steer", layer=LAYER, feature=80, alpha=2.0), 0, "latent 80 out of range"),
        (dict(op="ablate", layer=LAYER, feature=[3, 1000]), 0, "latent 1000 out of range"),
        (dict(op="steer", layer=LAYER, feature=75, alpha=2.0), 0, "b_excl: model A"),
        (dict(op="ablate", layer=LAYER, feature=2), 1, "a_excl: model B"),
        (dict(op="add", layer=LAYER, feature=75, dose=1.0, from_model=0), 1, "b_excl: model A"),
        (dict(op="add", layer=LAYER, vector=[1.0] * (D_MODEL + 1), dose=1.0), 0, "vector has 33 entries"),
        (dict(op="reconstruct", layer=LAYER + 1), 0, "trained on layer 1"),
        (dict(op="steer", layer=LAYER, feature=3, alpha=2.0), 2, "model_index 2 out of range"),
    ],
)
def test_binding_errors(model, spec, model_index, message):
    with pytest.raises(UserError, match=message):
        with intervene(model, [spec], tiny_crosscoder(), model_index):
            pass


def test_latent_ops_need_a_matching_crosscoder(model):
    with pytest.raises(UserError, match="needs a crosscoder"):
        with intervene(model, [dict(op="reconstruct", layer=LAYER)]):
            pass
    with pytest.raises(UserError, match="width 16 does not match"):
        with intervene(model, [dict(op="reconstruct", layer=LAYER)], tiny_crosscoder(d_model=16)):
            pass


def test_transfer_of_a_direction_into_the_base_binds(model):
    # A-exclusive latent 2 read from A's decoder, added into the base (model index 1).
    with intervene(model, [dict(op="add", layer=LAYER, feature=2, dose=0.5, from_model=0)], tiny_crosscoder(), 1) as bound:
        assert len(bound) == 1
