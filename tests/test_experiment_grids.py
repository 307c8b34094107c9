"""The experiment's grids: a narrower grid is a subset of the full one, keys unchanged.

Null pairs and the headroom twin run narrower grids (experiment.config.GRIDS) to keep the matrix
within its hour; their cells are compared with the real twin's full-grid cells by key, so a
narrower grid must make exactly the full grid's conditions of its families, nothing new.
"""

import pytest
import torch

from tooldiff.errors import UserError
from tooldiff.experiment import load_experiment_config
from tooldiff.experiment.conditions import Candidates, crosscoder_conditions

BASE = {"alphas": [1, 16, 32], "doses": [0.5, 1.0], "n_random": 2, "n_unrelated": 1, "top_s": 2}


def conditions(grid: str) -> dict:
    gen = torch.Generator().manual_seed(0)
    cand = Candidates(top=[0, 9], unrelated=[20], relative_size={0: 0.1, 9: 0.05, 20: 0.1},
                      dom={"call_vs_nocall": torch.randn(8, generator=gen)}, random_DR=torch.randn(2, 8, generator=gen),
                      directions={i: torch.randn(8, generator=gen) for i in (0, 20)})
    cfg = load_experiment_config({**BASE, "grid": grid})
    return {c.key: c for c in crosscoder_conditions("cc0", 1, cfg, cand)}


def test_narrower_grids_are_subsets_of_the_full_grid_with_the_same_keys():
    full, top, steer = conditions("full"), conditions("top_latent"), conditions("steer")
    assert set(steer) < set(top) < set(full)
    # top_latent leaves out exactly the top-|S| latent sets
    assert {k for k, c in full.items() if c.role == "effect" and len(c.features) > 1} == \
        {k for k, c in full.items() if c.role == "effect" and k not in top}
    assert all(len(c.features) <= 1 for c in top.values())
    assert {c.intervention for c in top.values() if c.role == "effect"} == \
        {"reconstruct", "reconstruct_mismatched", "steer", "ablate", "negative_steer", "ablate_direction", "add"}
    # steer: the top latent's steer grid, its random and unrelated controls and its DoM rivals alone
    effects = [c for c in steer.values() if c.role == "effect"]
    assert {(c.intervention, c.features, c.alpha) for c in effects} == {("steer", (0,), 16.0), ("steer", (0,), 32.0)}
    assert {c.role for c in steer.values()} == {"effect", "control_random", "control_unrelated", "baseline"}
    for c in effects:  # every named control and rival is in the grid
        assert set(c.controls) | set(c.rivals) <= set(steer)


def test_an_unknown_grid_is_one_user_error():
    with pytest.raises(UserError, match="grid"):
        load_experiment_config({"grid": "everything"})
