"""The experiment grid: which conditions run, on how many test prompts, with what controls."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, field_validator

from tooldiff.errors import validated


class ExperimentConfig(BaseModel):
    """Knobs of `tooldiff experiment`; defaults follow the paper's grid (SPEC §1, §3)."""

    model_config = ConfigDict(extra="forbid")

    alphas: list[float] = [1, 6, 16, 32, 64]
    doses: list[float] = [0.25, 0.5, 1.0]
    negative_alpha: float = -4.0
    top_s: int = 4  # |S| for the multi-latent steer / ablate
    n_random: int = 5  # random equal-norm directions per steer/add condition
    n_unrelated: int = 2  # least tool-related latents per steer/add condition
    contrast: str = "paper"  # which ranking picks "the top A-exclusive latent": paper | strict
    pool: str = "a_excl"  # a_excl (the paper) | rl_side (A-exclusive and RL-dominant shared latents)
    positions: str = "last_prompt"
    n_per_kind: int = 60  # test prompts per request kind (call / not_offered / chitchat)
    max_new_tokens: int = 40
    parse_format: str = "hermes"  # how outputs are parsed: hermes | toolrl | openai
    batch_size: int = 256  # tiny models generate ~1.5x faster per row at 256 than at 64 on CPU
    n_boot: int = 1000
    seed: int = 0
    device: str = "cpu"

    @field_validator("alphas", "doses")
    @classmethod
    def _finite(cls, v: list[float]) -> list[float]:
        if not v or any(not math.isfinite(x) for x in v):
            raise ValueError("must be a non-empty list of finite numbers")
        return v

    @field_validator("negative_alpha")
    @classmethod
    def _finite_one(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be finite")
        return v

    @field_validator("contrast")
    @classmethod
    def _contrast(cls, v: str) -> str:
        if v not in ("paper", "strict"):
            raise ValueError("must be 'paper' or 'strict'")
        return v

    @field_validator("pool")
    @classmethod
    def _pool(cls, v: str) -> str:
        if v not in ("a_excl", "rl_side"):
            raise ValueError("must be 'a_excl' or 'rl_side'")
        return v


def load_experiment_config(overrides: dict | None) -> ExperimentConfig:
    return validated(ExperimentConfig, dict(overrides or {}), "experiment config")
