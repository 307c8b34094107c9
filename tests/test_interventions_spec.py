"""Bad interventions fail early with one clear UserError; good ones round-trip through JSON;
steering files and policies; a spec is bound once."""

import json
import math

import pytest
import torch

from tooldiff.errors import UserError
from tooldiff.interventions.policy import SteeringPolicy
from tooldiff.interventions import (
    LIBRARY, Intervention, bind, generate_completions, intervene, parse_intervention, parse_interventions,
    read_steering_file,
)

torch.set_num_threads(1)


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(op="amplify", layer=1, feature=3, alpha=2.0), "op"),
        (dict(op="steer", layer=1, feature=3, alpha=math.nan), "alpha must be finite"),
        (dict(op="steer", layer=1, feature=3, alpha=math.inf), "alpha must be finite"),
        (dict(op="steer", layer=1, feature=3, alpha=1e6), "exceeds the cap"),
        (dict(op="add", layer=1, feature=3, dose=-math.inf), "dose must be finite"),
        (dict(op="add", layer=1, feature=3, dose=1e4), "exceeds the cap"),
        (dict(op="clamp", layer=1, feature=3, value=math.nan), "value must be finite"),
        (dict(op="steer", layer=1, feature=3), "needs alpha"),
        (dict(op="add", layer=1, feature=3, alpha=2.0), "alpha is not used"),
        (dict(op="steer", layer=1, alpha=2.0), "needs a feature"),
        (dict(op="steer", layer=1, feature=3, vector=[1.0] * 4, alpha=2.0), "either feature or vector"),
        (dict(op="add", layer=1, vector=[1.0, math.nan], dose=1.0), "NaN or inf"),
        (dict(op="add", layer=1, feature=[1, 2], dose=1.0), "one feature"),
        (dict(op="steer", layer=1, feature=-2, alpha=2.0), ">= 0"),
        (dict(op="steer", layer=-1, feature=2, alpha=2.0), "layer must be >= 0"),
        (dict(op="steer", layer=True, feature=2, alpha=2.0), "layer: Input should be a valid integer"),
        (dict(op="steer", layer=1, feature=2, alpha=2.0, strength=3), "unknown key 'strength'"),
        (dict(op="steer", layer=1, feature=2, alpha=2.0, positions="middle"), "positions"),
        (dict(op="reconstruct", layer=1, feature=2), "neither feature nor vector"),
        (dict(op="steer", layer=1, feature=2, alpha=2.0, add_error=True), "add_error only"),
        (dict(op="add", layer=1, feature=2, dose=1.0, from_model=2), "from_model must be 0"),
    ],
)
def test_bad_specs_raise_user_error(fields, message):
    with pytest.raises(UserError, match=message):
        parse_intervention(fields)


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
def model(tiny):
    return tiny.model("qwen2", vocab_size=64)


# The `tiny` fixture's decoders have 3 layers of width 32; its crosscoder reads layer 1.
@pytest.mark.parametrize(
    "spec, model_index, message",
    [
        (dict(op="steer", layer=3, vector=[1.0] * 32, alpha=2.0), 0, "layer 3 is out of range"),
        (dict(op="steer", layer=1, feature=80, alpha=2.0), 0, "latent 80 out of range"),
        (dict(op="ablate", layer=1, feature=[3, 1000]), 0, "latent 1000 out of range"),
        (dict(op="steer", layer=1, feature=75, alpha=2.0), 0, "b_excl: model A"),
        (dict(op="ablate", layer=1, feature=2), 1, "a_excl: model B"),
        (dict(op="add", layer=1, feature=75, dose=1.0, from_model=0), 1, "b_excl: model A"),
        (dict(op="add", layer=1, vector=[1.0] * (32 + 1), dose=1.0), 0, "vector has 33 entries"),
        (dict(op="reconstruct", layer=1 + 1), 0, "trained on layer 1"),
        (dict(op="steer", layer=1, feature=3, alpha=2.0), 2, "model_index 2 out of range"),
    ],
)
def test_binding_errors(tiny, model, spec, model_index, message):
    with pytest.raises(UserError, match=message):
        with intervene(model, [spec], tiny.crosscoder(), model_index):
            pass


def test_latent_ops_need_a_matching_crosscoder(tiny, model):
    with pytest.raises(UserError, match="needs a crosscoder"):
        with intervene(model, [dict(op="reconstruct", layer=tiny.LAYER)]):
            pass
    with pytest.raises(UserError, match="width 16 does not match"):
        with intervene(model, [dict(op="reconstruct", layer=tiny.LAYER)], tiny.crosscoder(d_model=16)):
            pass


def test_transfer_of_a_direction_into_the_base_binds(tiny, model):
    # A-exclusive latent 2 read from A's decoder, added into the base (model index 1).
    with intervene(model, [dict(op="add", layer=tiny.LAYER, feature=2, dose=0.5, from_model=0)], tiny.crosscoder(), 1) as bound:
        assert len(bound) == 1


def test_a_bound_intervention_runs_only_where_it_was_bound(tiny, model):
    spec = Intervention(op="steer", layer=tiny.LAYER, feature=3, alpha=2.0)
    cc = tiny.crosscoder()
    bound = bind(spec, model, cc, 0)
    with intervene(model, [bound]) as placed:  # no crosscoder needed: it is bound already
        assert placed[0].bound is bound
    with pytest.raises(UserError, match="bound for another model"):
        with intervene(model, [bound], cc, 1):
            pass
    with pytest.raises(UserError, match="bound for another model"):
        with intervene(tiny.model("qwen2", vocab_size=64), [bound], cc, 0):
            pass


def test_generation_binds_each_spec_once_for_all_batches(tiny, monkeypatch):
    from tooldiff.interventions import hooks

    tok = tiny.tokenizer()
    lm = tiny.model("qwen2", len(tok))
    calls = []
    real_bind = hooks.bind
    monkeypatch.setattr(hooks, "bind", lambda *a: calls.append(a[0]) or real_bind(*a))
    steer = dict(op="add", layer=tiny.LAYER, vector=[1.0] * tiny.D_MODEL, dose=0.5)
    per_row = [[steer], [], [steer], [steer, dict(steer, dose=-0.5)]]
    generate_completions(lm, tok, ["the weather", "a quick", "call the", "tools"], per_row, max_new_tokens=2,
                         batch_size=1, progress=False)
    assert len(calls) == 2  # two distinct specs, four batches


@pytest.mark.parametrize("content", [
    [{"op": "steer", "layer": 1, "feature": [4, 5], "alpha": 6}],
    {"steering": [{"op": "steer", "layer": 1, "feature": [4, 5], "alpha": 6}]},
])
def test_steering_files_are_a_list_or_an_object(tmp_path, content):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(content))
    assert read_steering_file(path) == (Intervention(op="steer", layer=1, feature=(4, 5), alpha=6.0),)


DIAL = SteeringPolicy(ops=("steer", "add", "ablate", "clamp"), max_abs_alpha=128.0, max_abs_dose=8.0, max_items=16)


@pytest.mark.parametrize("content, policy, message", [
    ([{"op": "steer", "layer": 1, "feature": 4, "alpha": "6"}], LIBRARY, r"steering\[0\]\.alpha: Input should be a valid number"),
    ([{"op": "steer", "feature": 4, "alpha": 6}], LIBRARY, r"steering\[0\]\.layer: Field required"),
    ([{"op": "reconstruct", "layer": 1}], DIAL, r"steering\[0\]\.op: must be one of steer, add, ablate, clamp"),
    ([{"op": "add", "layer": 1, "feature": 4, "dose": 20}], DIAL, r"steering\[0\]\.dose: dose=20 exceeds the cap \|dose\| <= 8"),
    ([{"op": "add", "layer": 1, "feature": 4, "dose": 200}], LIBRARY, r"steering\[0\]: dose=200 exceeds the cap \|dose\| <= 100"),
    ({"steer": []}, LIBRARY, "steering: Field required"),
    ("{", LIBRARY, "not valid JSON"),
])
def test_steering_file_errors_are_one_line(tmp_path, content, policy, message):
    path = tmp_path / "s.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(UserError, match=message) as info:
        read_steering_file(path, policy)
    assert str(info.value).startswith(f"steering file {path}") and "\n" not in str(info.value)
    with pytest.raises(UserError, match="does not exist"):
        read_steering_file(tmp_path / "missing.json")


def test_the_library_policy_admits_every_op_and_a_dial_refuses_what_it_does_not_allow():
    specs = [Intervention(op="reconstruct", layer=0), Intervention(op="steer", layer=0, feature=1, alpha=500.0)]
    LIBRARY.admit(specs, "x")
    with pytest.raises(UserError, match=r"x\[0\]\.alpha: alpha=500 exceeds the cap \|alpha\| <= 128"):
        DIAL.model_copy(update={"ops": ("steer",)}).admit(specs[1:], "x")
    with pytest.raises(UserError, match=r"x\[0\]\.op: must be one of steer, add, ablate, clamp, got 'reconstruct'"):
        DIAL.admit(specs, "x")
    with pytest.raises(UserError, match="x: 17 items exceed the cap of 16"):
        DIAL.admit(specs[1:] * 17, "x")
