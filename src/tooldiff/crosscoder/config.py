"""Crosscoder and sweep configuration: pydantic models, TOML loading, the latent partition.

A sweep file has one `[train]` table (what every configuration shares, because they all see
the same activation batches) and one `[[crosscoder]]` table per configuration. Unknown keys
are errors that name the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tooldiff import configs
from tooldiff.errors import UserError, read_toml, validated

Sparsity = Literal["topk", "batchtopk", "l1"]
# How the step computes (crosscoder/precision.py); "auto" resolves per device.
Precision = Literal["auto", "fp32", "tf32", "bf16"]
PRECISIONS = ("fp32", "tf32", "bf16")
Kernels = Literal["auto", "sparse", "dense"]



class CrosscoderConfig(BaseModel):
    """One crosscoder / DFC. Latents are laid out `[A-excl | shared | B-excl]`.

    Model 0 (A, the RL model) owns latents `[0, n_excl_a + n_shared)`, model 1 (B, the base)
    owns `[n_excl_a, dict_size)`. Exclusive fractions 0/0 give the plain crosscoder.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    d_model: Optional[int] = Field(None, gt=0, description="Width of each model's activations; taken from the data if unset.")
    n_models: int = Field(2, ge=1)
    dict_size: int = Field(..., gt=0, description="D, the number of latents.")
    excl_a: float = Field(0.0, ge=0.0, lt=1.0, description="Fraction of D exclusive to model A (RL).")
    excl_b: float = Field(0.0, ge=0.0, lt=1.0, description="Fraction of D exclusive to model B (base).")
    sparsity: Sparsity = "topk"
    k: int = Field(8, gt=0, description="Active latents per row (topk) or on average (batchtopk).")
    # BatchTopK ranks v_i = f_i * score_i. "sum" sums the decoder norms of the models a latent
    # has (an exclusive latent sums one norm, a shared one two); "mean" averages them instead.
    batchtopk_score: Literal["sum", "mean"] = "sum"
    theta_momentum: float = Field(0.99, ge=0.0, lt=1.0, description="EMA momentum of the BatchTopK threshold.")
    # Anthropic's "designated shared" latents: one raw decoder vector serves both models, so a
    # shared latent cannot absorb any part of the A-minus-B difference; all of it must go to the
    # exclusive latents (docs/crosscoder.md: why the positive control needs it). The paper's DFC
    # leaves them untied.
    tie_shared: bool = Field(False, description="Shared latents write one raw decoder vector into both models.")
    lambda_excl: float = Field(0.0, ge=0.0, description="Paper's L1 on A∪S and B∪S latents.")
    lambda_shared: float = Field(0.0, ge=0.0, description="Paper's extra L1 on shared latents.")
    l1_decoder_norm: Optional[bool] = Field(
        None, description="Weight |f_i| by Σ_m‖W_dec[m,i]‖ in the L1 terms (default: on for sparsity=l1)."
    )
    aux_k: int = Field(0, ge=0, description="AuxK: dead latents decoded onto the residual (0 = off).")
    aux_coef: float = Field(1.0 / 32.0, ge=0.0)
    dead_tokens: int = Field(100_000, gt=0, description="A latent is dead after this many tokens without firing.")
    lr: float = Field(1e-4, gt=0.0)
    steps: int = Field(1000, gt=0)
    seed: int = 0
    grad_clip: float = Field(1.0, ge=0.0, description="Max global grad norm per config (0 = off).")
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = Field(1e-8, gt=0.0)

    @model_validator(mode="after")
    def _check(self) -> "CrosscoderConfig":
        if (self.excl_a or self.excl_b) and self.n_models != 2:
            raise ValueError("exclusive latents need exactly 2 models")
        if self.tie_shared and self.n_models != 2:
            raise ValueError("tie_shared needs exactly 2 models")
        if self.n_shared < 1:
            raise ValueError(f"excl_a + excl_b leave no shared latent in dict_size={self.dict_size}")
        if self.sparsity != "l1" and self.k > self.dict_size:
            raise ValueError(f"k={self.k} exceeds dict_size={self.dict_size}")
        if self.sparsity == "l1" and self.lambda_excl == 0 and self.lambda_shared == 0:
            raise ValueError("sparsity='l1' needs lambda_excl or lambda_shared > 0")
        if self.aux_k > self.dict_size:
            raise ValueError(f"aux_k={self.aux_k} exceeds dict_size={self.dict_size}")
        return self

    # --- the partition --------------------------------------------------------------------
    @property
    def n_excl_a(self) -> int:
        return int(round(self.excl_a * self.dict_size))

    @property
    def n_excl_b(self) -> int:
        return int(round(self.excl_b * self.dict_size))

    @property
    def n_shared(self) -> int:
        return self.dict_size - self.n_excl_a - self.n_excl_b

    def span(self, model: int) -> tuple[int, int]:
        """The contiguous latent range `[start, stop)` that model `model` has weights for."""
        if not 0 <= model < self.n_models:
            raise UserError(f"model index {model} out of range for a {self.n_models}-model crosscoder")
        if self.n_models != 2:
            return 0, self.dict_size
        if model == 0:
            return 0, self.n_excl_a + self.n_shared
        return self.n_excl_a, self.dict_size

    def spans(self) -> list[tuple[int, int]]:
        return [self.span(m) for m in range(self.n_models)]

    @property
    def use_decoder_norm_l1(self) -> bool:
        return self.sparsity == "l1" if self.l1_decoder_norm is None else self.l1_decoder_norm

    def shape_key(self) -> tuple:
        """Configs with equal keys can be stacked into one set of [C, ...] tensors."""
        return (self.d_model, self.n_models, self.dict_size, self.n_excl_a, self.n_excl_b, self.sparsity,
                self.tie_shared)

    def display_name(self) -> str:
        if self.name:
            return self.name
        kind = "dfc" if (self.n_excl_a or self.n_excl_b) else "cc"
        part = f"-excl{self.excl_a:g}-{self.excl_b:g}" if kind == "dfc" else ""
        sp = f"k{self.k}" if self.sparsity != "l1" else f"l1-{self.lambda_excl:g}"
        tied = "-tied" if self.tie_shared else ""
        return f"{kind}{tied}-D{self.dict_size}{part}-{self.sparsity}-{sp}-s{self.seed}"


class TrainConfig(BaseModel):
    """What every configuration of a sweep shares, because they all see the same batches."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_size: int = Field(1024, gt=0)
    data_seed: int = Field(0, description="Seed of the row shuffle (shared by the whole sweep).")
    target_rms: float = Field(1.0, gt=0.0, description="Per-element RMS of each model's normalized activations.")
    checkpoint_every: int = Field(500, gt=0, description="Steps between checkpoints.")
    eval_rows: int = Field(4096, ge=0, description="Rows held out of training for the final metrics.")
    keep_checkpoints: int = Field(2, gt=0, description="Resume states kept on disk.")
    stack: bool = Field(True, description="Stack configs of equal shape into one set of tensors.")
    precision: Precision = Field("auto", description="Dense products (the TopK selection; with dense kernels the "
                                 "decode and encoder gradient too): fp32, tf32 or bf16; auto = bf16 on CUDA, fp32 "
                                 "elsewhere. Weights, gradients and Adam stay float32.")
    kernels: Kernels = Field("auto", description="The K-sparse parts as sparse gathers or dense products; auto = "
                             "dense on CUDA, sparse elsewhere.")
    cuda_graph: bool = Field(True, description="On a GPU, replay each stack's step as one CUDA graph (TopK and L1; "
                             "one process). Falls back to eager steps if capture fails.")


class SweepConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    train: TrainConfig = TrainConfig()
    crosscoder: list[CrosscoderConfig] = Field(..., min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> "SweepConfig":
        names = [c.display_name() for c in self.crosscoder]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate crosscoder names {dupes}; give each config a distinct 'name'")
        for n in names:
            if not re.fullmatch(r"[A-Za-z0-9._+-]+", n):
                raise ValueError(f"crosscoder name {n!r} must be a plain file name")
        return self

    def with_d_model(self, d_model: int) -> "SweepConfig":
        """Fill `d_model` from the data; a config that set a different one is an error."""
        fixed = []
        for c in self.crosscoder:
            if c.d_model is not None and c.d_model != d_model:
                raise UserError(
                    f"crosscoder {c.display_name()!r}: d_model={c.d_model} does not match the activations' d={d_model}"
                )
            fixed.append(c.model_copy(update={"d_model": d_model, "name": c.display_name()}))
        return self.model_copy(update={"crosscoder": fixed})

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]


def parse_sweep(raw: dict[str, Any], source: str = "sweep") -> SweepConfig:
    return validated(SweepConfig, raw, source)


def load_sweep(path: str | Path) -> SweepConfig:
    """Read a sweep TOML (a file, or the name of a shipped one such as `sweep-demo`); every
    mistake becomes a one-line UserError naming the file and key."""
    path = configs.resolve(path)
    raw = read_toml(path, "sweep file")
    return parse_sweep(raw, source=str(path))
