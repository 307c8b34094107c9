"""The headroom twin: an RL checkpoint chosen on calibration, exported (its run, steered and with the
final twin's latent added into it, is tested where the matrix runs it: tests/test_nullpairs.py)."""

import json

import pytest
import torch

from tooldiff.errors import UserError
from tooldiff.headroom import export_checkpoint, headroom_step


def _emergence(path, strict_by_step: dict[int, float]):
    rows = [{"step": s, "calibration": {"strict": v}} for s, v in strict_by_step.items()]
    path.write_text(json.dumps({"rows": rows}))
    return path


def test_the_checkpoint_closest_to_a_quarter_is_chosen_and_never_the_base(tmp_path):
    table = _emergence(tmp_path / "emergence.json", {0: 0.25, 5: 0.4, 20: 0.2, 40: 0.9})
    assert headroom_step(table) == (20, 0.2)
    with pytest.raises(UserError, match="run `tooldiff emergence` first"):
        headroom_step(tmp_path / "missing.json")
    with pytest.raises(UserError, match="lists no RL checkpoint"):
        headroom_step(_emergence(tmp_path / "base-only.json", {0: 0.1}))


def test_an_exported_checkpoint_is_that_step_as_a_model_directory(tiny_organism, tmp_path):
    from tooldiff.hf import load_model, load_tokenizer
    from tooldiff.organism.checkpoints import load_checkpoint

    step = min(int(p.stem.removeprefix("step-")) for p in (tiny_organism / "rl" / "checkpoints").glob("step-*"))
    out = export_checkpoint(tiny_organism, step, tmp_path / "model")
    exported, saved = load_model(out).state_dict(), load_checkpoint(tiny_organism, step).state_dict()
    assert exported.keys() == saved.keys() and all(torch.equal(exported[k], saved[k]) for k in saved)
    assert load_tokenizer(out) is not None and not (out / "checkpoints").exists()
