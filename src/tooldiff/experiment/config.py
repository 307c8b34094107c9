"""The experiment grid: which conditions run, on how many test prompts, with what controls."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from tooldiff.errors import validated
from tooldiff.interventions.spec import Positions


Finite = Annotated[float, Field(allow_inf_nan=False)]

# Which condition families each grid runs (the one home of this list; conditions.py reads it):
# - full: the study, every family on the top latent and on the top |S| latents;
# - top_latent: the splice and every op of the top latent alone, with their panels: what a null
#   pair is compared on (the real twin's same cells, its single-latent claim);
# - steer: the top latent's steer grid alone, with its panels and rivals (the headroom twin);
# - ablate: the top latent's ablations alone (the positive control: its criteria ask no more).
Grid = Literal["full", "top_latent", "steer", "ablate"]
GRIDS: dict[str, frozenset[str]] = {
    "full": frozenset({"splice", "steer", "ablate", "transfer", "top_s"}),
    "top_latent": frozenset({"splice", "steer", "ablate", "transfer"}),
    "steer": frozenset({"steer"}),
    "ablate": frozenset({"ablate"}),
}


class ExperimentConfig(BaseModel):
    """Knobs of `tooldiff experiment`; defaults follow the paper's grid (SPEC §1, §3)."""

    model_config = ConfigDict(extra="forbid")

    alphas: list[Finite] = Field([1, 6, 16, 32, 64], min_length=1)
    doses: list[Finite] = Field([0.25, 0.5, 1.0], min_length=1)
    negative_alpha: Finite = -4.0
    top_s: int = 4  # |S| for the multi-latent steer / ablate
    n_random: int = 5  # random equal-norm directions per steer/add condition
    n_unrelated: int = 2  # least tool-related latents per steer/add condition
    contrast: Literal["paper", "strict"] = "paper"  # which ranking picks "the top A-exclusive latent"
    pool: Literal["a_excl", "rl_side"] = "a_excl"  # a_excl (the paper) | rl_side (A-exclusive and RL-dominant shared)
    positions: Positions = "last_prompt"  # where the interventions act
    grid: Grid = "full"  # which condition families run (GRIDS)
    n_per_kind: int = 60  # test prompts per request kind (call / not_offered / chitchat)
    max_new_tokens: int = 40
    parse_format: str = "hermes"  # how outputs are parsed: hermes | toolrl | openai
    batch_size: int = 256  # tiny models generate ~1.5x faster per row at 256 than at 64 on CPU
    loss_texts: int = Field(64, ge=0)  # calibration texts per set for each splice's loss recovered (0: skip)
    n_boot: int = 1000
    seed: int = 0
    device: str = "cpu"

    def runs(self, family: str) -> bool:
        """Does this grid run the condition family (GRIDS)?"""
        return family in GRIDS[self.grid]


def load_experiment_config(overrides: dict | None) -> ExperimentConfig:
    return validated(ExperimentConfig, dict(overrides or {}), "experiment config")
