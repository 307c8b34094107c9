"""The crosscoder / Dedicated Feature Crosscoder, for inference and checkpoints.

Latent layout `[A-excl | shared | B-excl]`: model m owns one contiguous slice of the
dictionary (`cfg.span(m)`), and its encoder and decoder are `[L_m, d]` matrices over exactly
that slice. An A-exclusive latent therefore has no B parameters at all: exclusivity holds by
construction, with no masks to forget. Model 0 = A = the RL model, model 1 = B = the base.

Normalization lives in the module: per model, `x_norm = (x - mean_m) / scale_m`, where the
scale brings the per-element RMS to the sweep's target. `encode` applies it and `decode`
undoes it unless `normalized=True`, so raw activations go in and raw activations come out.

Training uses the stacked, sparse implementation in `stack.py`; this class is the dense,
readable reference that interventions and feature analysis call.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import torch
from pydantic import BaseModel, ConfigDict, ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from tooldiff.crosscoder.config import CrosscoderConfig
from tooldiff.activations.manifest import sha256_file
from tooldiff.errors import UserError

WEIGHTS_FILE = "crosscoder.safetensors"
CONFIG_FILE = "config.json"
FORMAT = "tooldiff-crosscoder/1"
GROUPS = ("a_excl", "shared", "b_excl")


class CheckpointInfo(BaseModel):
    """Where a crosscoder came from: saved beside the weights in config.json."""

    model_config = ConfigDict(extra="allow")

    models: list[str] = []  # [A (rl), B (base)] as given to `harvest`
    layer: Optional[int] = None
    positions: Optional[str] = None
    data_hash: Optional[str] = None
    step: int = 0
    target_rms: float = 1.0


class Crosscoder(nn.Module):
    def __init__(self, cfg: CrosscoderConfig, info: Optional[CheckpointInfo] = None):
        super().__init__()
        if cfg.d_model is None:
            raise UserError(f"crosscoder {cfg.display_name()!r} needs d_model to be built")
        self.cfg = cfg
        self.info = info or CheckpointInfo()
        d, L, M = cfg.d_model, cfg.dict_size, cfg.n_models
        self.W_enc_LD = nn.ParameterList([nn.Parameter(torch.zeros(b - a, d)) for a, b in cfg.spans()])
        self.W_dec_LD = nn.ParameterList([nn.Parameter(torch.zeros(b - a, d)) for a, b in cfg.spans()])
        self.b_enc_L = nn.Parameter(torch.zeros(L))
        self.b_dec_MD = nn.Parameter(torch.zeros(M, d))
        self.register_buffer("norm_mean_MD", torch.zeros(M, d))
        self.register_buffer("norm_scale_M", torch.ones(M))
        # BatchTopK inference threshold on v = f * score (0 until training sets it).
        self.register_buffer("theta", torch.zeros(()))

    # --- construction ---------------------------------------------------------------------
    @classmethod
    def initialized(cls, cfg: CrosscoderConfig, info: Optional[CheckpointInfo] = None) -> "Crosscoder":
        """Seeded init: unit-norm decoder rows, encoder tied to the decoder, zero biases."""
        cc = cls(cfg, info)
        gen = torch.Generator().manual_seed(cfg.seed)
        with torch.no_grad():
            for enc, dec in zip(cc.W_enc_LD, cc.W_dec_LD):
                w = torch.randn(dec.shape, generator=gen)
                w /= w.norm(dim=1, keepdim=True)
                dec.copy_(w)
                enc.copy_(w)
            if cfg.tie_shared:
                cc.W_dec_LD[1][: cfg.n_shared].copy_(cc.W_dec_LD[0][cfg.n_excl_a:])
        return cc

    def set_normalization(self, mean_MD: torch.Tensor, scale_M: torch.Tensor) -> None:
        with torch.no_grad():
            self.norm_mean_MD.copy_(mean_MD)
            self.norm_scale_M.copy_(scale_M)

    # --- the partition --------------------------------------------------------------------
    @property
    def n_models(self) -> int:
        return self.cfg.n_models

    @property
    def dict_size(self) -> int:
        return self.cfg.dict_size

    @property
    def d_model(self) -> int:
        return int(self.cfg.d_model)

    @property
    def a_latents(self) -> slice:
        """A-exclusive latents."""
        return slice(0, self.cfg.n_excl_a)

    @property
    def shared_latents(self) -> slice:
        return slice(self.cfg.n_excl_a, self.cfg.n_excl_a + self.cfg.n_shared)

    @property
    def b_latents(self) -> slice:
        """B-exclusive latents."""
        return slice(self.cfg.dict_size - self.cfg.n_excl_b, self.cfg.dict_size)

    def model_latents(self, model: int) -> slice:
        """Every latent that model `model` has weights for."""
        return slice(*self.cfg.span(model))

    def latent_group(self, latent: int) -> str:
        if not 0 <= latent < self.dict_size:
            raise UserError(f"latent {latent} out of range 0..{self.dict_size - 1}")
        if latent < self.cfg.n_excl_a:
            return "a_excl"
        if latent >= self.dict_size - self.cfg.n_excl_b:
            return "b_excl"
        return "shared"

    # --- normalization --------------------------------------------------------------------
    def normalize(self, x_BD: torch.Tensor, model: int) -> torch.Tensor:
        return (x_BD.to(self.norm_mean_MD.dtype) - self.norm_mean_MD[model]) / self.norm_scale_M[model]

    def denormalize(self, x_BD: torch.Tensor, model: int) -> torch.Tensor:
        return x_BD * self.norm_scale_M[model] + self.norm_mean_MD[model]

    def _check_input(self, x: torch.Tensor, single: bool) -> None:
        want = (self.d_model,) if single else (self.n_models, self.d_model)
        if tuple(x.shape[1:]) != want:
            raise UserError(f"crosscoder input has shape {tuple(x.shape)}; expected (batch, {', '.join(map(str, want))})")

    # --- encode ---------------------------------------------------------------------------
    def decoder_norms_ML(self) -> torch.Tensor:
        """‖W_dec[m, i]‖ in normalized space, 0 where model m has no weights for latent i."""
        norms = self.b_enc_L.new_zeros(self.n_models, self.dict_size)
        for m, (a, b) in enumerate(self.cfg.spans()):
            norms[m, a:b] = self.W_dec_LD[m].norm(dim=1)
        return norms

    def batchtopk_score_L(self) -> torch.Tensor:
        """The per-latent factor BatchTopK ranks by: v_i = f_i * score_i."""
        norms = self.decoder_norms_ML()
        total = norms.sum(0)
        if self.cfg.batchtopk_score == "mean":
            owners = torch.zeros_like(total)
            for a, b in self.cfg.spans():
                owners[a:b] += 1
            total = total / owners
        return total

    def preactivation(self, xn_BMD: torch.Tensor) -> torch.Tensor:
        pre_BL = self.b_enc_L.expand(xn_BMD.shape[0], -1).clone()
        for m, (a, b) in enumerate(self.cfg.spans()):
            pre_BL[:, a:b] += xn_BMD[:, m] @ self.W_enc_LD[m].T
        return pre_BL

    def activate(self, pre_BL: torch.Tensor) -> torch.Tensor:
        """Inference sparsity: TopK per row, BatchTopK by the threshold θ, or plain ReLU (L1)."""
        f_BL = torch.relu(pre_BL)
        if self.cfg.sparsity == "topk" or (self.cfg.sparsity == "batchtopk" and float(self.theta) <= 0):
            # An untrained BatchTopK (θ unset) falls back to per-row TopK.
            vals_BK, idx_BK = f_BL.topk(self.cfg.k, dim=1)
            return torch.zeros_like(f_BL).scatter_(1, idx_BK, vals_BK)
        if self.cfg.sparsity == "batchtopk":
            return f_BL * (f_BL * self.batchtopk_score_L() > self.theta)
        return f_BL

    def encode(self, x_BMD: torch.Tensor, normalized: bool = False) -> torch.Tensor:
        self._check_input(x_BMD, single=False)
        xn_BMD = x_BMD if normalized else torch.stack(
            [self.normalize(x_BMD[:, m], m) for m in range(self.n_models)], dim=1
        )
        return self.activate(self.preactivation(xn_BMD.to(self.b_enc_L.dtype)))

    def encode_single(self, x_BD: torch.Tensor, model: int, normalized: bool = False) -> torch.Tensor:
        """Encode with only model `model`'s activations (the hooked model at intervention time).

        The other model's normalized input is taken as 0, i.e. its mean activation: its
        encoder term drops out and only the bias and this model's encoder remain.
        """
        self._check_input(x_BD, single=True)
        return self.activate(self.preactivation_single(x_BD, model, normalized))

    def preactivation_single(self, x_BD: torch.Tensor, model: int, normalized: bool = False) -> torch.Tensor:
        """pre_BL from model `model`'s activations alone (see `encode_single`)."""
        a, b = self.cfg.span(model)
        xn_BD = (x_BD if normalized else self.normalize(x_BD, model)).to(self.b_enc_L.dtype)
        pre_BL = self.b_enc_L.expand(x_BD.shape[0], -1).clone()
        pre_BL[:, a:b] += xn_BD @ self.W_enc_LD[model].T
        return pre_BL

    # --- decode ---------------------------------------------------------------------------
    def decode_single(self, f_BL: torch.Tensor, model: int, normalized: bool = False) -> torch.Tensor:
        a, b = self.cfg.span(model)
        xn_BD = f_BL[:, a:b].to(self.b_enc_L.dtype) @ self.W_dec_LD[model] + self.b_dec_MD[model]
        return xn_BD if normalized else self.denormalize(xn_BD, model)

    def decode(self, f_BL: torch.Tensor, normalized: bool = False) -> torch.Tensor:
        if f_BL.ndim != 2 or f_BL.shape[1] != self.dict_size:
            raise UserError(f"latent tensor has shape {tuple(f_BL.shape)}; expected (batch, {self.dict_size})")
        return torch.stack([self.decode_single(f_BL, m, normalized) for m in range(self.n_models)], dim=1)

    def forward(self, x_BMD: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x_BMD))

    def decoder_vector(self, latent: int, model: int, raw: bool = True) -> torch.Tensor:
        """Latent `latent`'s decoder row for `model`; zeros if that model has no weights for it.

        raw=True scales it into the model's raw activation space (a direction: no mean added),
        so `h + f * decoder_vector(...)` is the raw-space effect of activation f.
        """
        self.latent_group(latent)
        a, b = self.cfg.span(model)
        if not a <= latent < b:
            return self.b_dec_MD.new_zeros(self.d_model)
        vec = self.W_dec_LD[model][latent - a].detach().clone()
        return vec * self.norm_scale_M[model] if raw else vec

    # --- checkpoints ----------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """safetensors weights + config.json (config, provenance, weights checksum); atomic."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        tmp = directory / (WEIGHTS_FILE + ".tmp")
        save_file(tensors, str(tmp), metadata={"format": FORMAT})
        digest = sha256_file(tmp)
        tmp.replace(directory / WEIGHTS_FILE)
        meta = {"format": FORMAT, "config": self.cfg.model_dump(mode="json"),
                "info": self.info.model_dump(mode="json"), "weights_sha256": digest}
        tmp_cfg = directory / (CONFIG_FILE + ".tmp")
        tmp_cfg.write_text(json.dumps(meta, indent=2))
        tmp_cfg.replace(directory / CONFIG_FILE)
        return directory

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu") -> "Crosscoder":
        directory = Path(directory)
        cfg_file, weights = directory / CONFIG_FILE, directory / WEIGHTS_FILE
        if not cfg_file.is_file() or not weights.is_file():
            raise UserError(f"{directory} is not a crosscoder checkpoint (needs {CONFIG_FILE} and {WEIGHTS_FILE})")
        meta = _read_meta(cfg_file)
        if meta.get("weights_sha256") and meta["weights_sha256"] != sha256_file(weights):
            raise UserError(f"{weights} is corrupt: its checksum does not match {cfg_file}")
        try:
            cfg = CrosscoderConfig.model_validate(meta["config"])
            info = CheckpointInfo.model_validate(meta.get("info", {}))
        except (ValidationError, KeyError) as e:
            raise UserError(f"{cfg_file}: invalid crosscoder config ({str(e).splitlines()[0]})") from None
        try:
            tensors = load_file(str(weights))
        except (SafetensorError, OSError) as e:
            raise UserError(f"{weights} is not a readable safetensors file: {e}") from None
        cc = cls(cfg, info)
        _load_checked(cc, tensors, weights)
        # A loaded crosscoder is an instrument, not a model in training: no autograd on its weights.
        return cc.to(device).eval().requires_grad_(False)


def _read_meta(cfg_file: Path) -> dict[str, Any]:
    try:
        meta = json.loads(cfg_file.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{cfg_file} is not valid JSON: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{cfg_file} is not a {FORMAT} checkpoint config")
    return meta


def _load_checked(cc: Crosscoder, tensors: dict[str, torch.Tensor], source: Path) -> None:
    expected = cc.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise UserError(f"{source} does not match its config: missing {missing}, unexpected {extra}")
    for name, want in expected.items():
        if tuple(tensors[name].shape) != tuple(want.shape):
            raise UserError(
                f"{source}: tensor {name!r} has shape {tuple(tensors[name].shape)}, config implies {tuple(want.shape)}"
            )
    cc.load_state_dict(tensors)
