"""Turn an `Intervention` into an edit function for one model and crosscoder.

Binding is where an intervention meets the model: the layer must exist, a vector must have the
model's width, a latent must exist and belong to the model whose weights it reads, and the
crosscoder must match the model's width and layer. Decoder directions are gathered once here,
so the hook itself only does arithmetic. A spec is bound once per model: the server binds a
request's steering when it admits it, `generate_completions` binds before its first batch, and
`intervene` runs what it is given bound as it is.

At intervention time only the hooked model's activations exist, so latents are read as
`encode_single(h, model_index)` reads them (the other model's normalized input taken as 0),
by the prepared reader of readout.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn

from tooldiff.crosscoder.model import Crosscoder
from tooldiff.errors import UserError
from tooldiff.hf import check_layer, hidden_size
from tooldiff.interventions import ops
from tooldiff.interventions.readout import latent_reader
from tooldiff.interventions.spec import Intervention

# h_..D -> h_..D: any leading shape, each position (a row of the last axis) edited on its own.
Edit = Callable[[torch.Tensor], torch.Tensor]
MODEL_NAMES = {0: "A (RL)", 1: "B (base)"}


@dataclass(frozen=True, eq=False)
class BoundIntervention:
    """An intervention checked against one model (and crosscoder) and ready to run: `edit` does
    the arithmetic on that model's hidden states. `model_key` says which model and which side of
    the crosscoder it was bound for; `intervene` refuses to run it on another."""

    spec: Intervention
    edit: Edit
    model_key: tuple[int, int]

    @property
    def positions(self) -> str:
        return self.spec.positions

    @property
    def layer(self) -> int:
        return self.spec.layer


def model_key(model: nn.Module, model_index: int) -> tuple[int, int]:
    return id(model), model_index


def bind(spec: Intervention, model: nn.Module, crosscoder: Optional[Crosscoder], model_index: int) -> BoundIntervention:
    """`spec`, checked against `model` and `crosscoder`, with the edit h_ND -> h_ND it performs there."""
    return BoundIntervention(spec, _edit(spec, model, crosscoder, model_index), model_key(model, model_index))


def _edit(spec: Intervention, model: nn.Module, crosscoder: Optional[Crosscoder], model_index: int) -> Edit:
    check_layer(model, spec.layer)
    d_model = hidden_size(model)
    if spec.vector is not None:
        return _bind_vector(spec, torch.tensor(spec.vector, dtype=torch.float32), d_model)
    cc = _checked_crosscoder(spec, crosscoder, model_index, d_model)
    if spec.op == "reconstruct":
        return _bind_reconstruct(spec, cc, model_index)
    return _bind_latents(spec, cc, model_index)


def _checked_crosscoder(spec: Intervention, cc: Optional[Crosscoder], model_index: int, d_model: int) -> Crosscoder:
    what = "reconstruct" if spec.op == "reconstruct" else f"{spec.op} on feature {list(spec.feature or ())}"
    if cc is None:
        raise UserError(f"{what} needs a crosscoder, and none was given")
    if not 0 <= model_index < cc.n_models:
        raise UserError(f"model_index {model_index} out of range for a {cc.n_models}-model crosscoder")
    if cc.d_model != d_model:
        raise UserError(f"crosscoder width {cc.d_model} does not match the model's hidden size {d_model}")
    trained_layer = cc.info.layer
    if trained_layer is not None and trained_layer != spec.layer:
        raise UserError(f"crosscoder was trained on layer {trained_layer}, but the intervention is at layer {spec.layer}")
    return cc


def _owned_latents(spec: Intervention, cc: Crosscoder, model: int) -> list[int]:
    """The spec's latents, each checked to exist and to have weights in model `model`."""
    owned = cc.model_latents(model)
    latents = list(spec.feature or ())
    for latent in latents:
        if not 0 <= latent < cc.dict_size:
            raise UserError(f"latent {latent} out of range: the crosscoder has {cc.dict_size} latents (0..{cc.dict_size - 1})")
        if not owned.start <= latent < owned.stop:
            raise UserError(
                f"latent {latent} is {cc.latent_group(latent)}: model {MODEL_NAMES.get(model, model)} has no weights for it"
            )
    return latents


def _in_float32(fn: Edit, device: torch.device | None = None) -> Edit:
    """Run `fn` in float32 (on `device`), handing back the model's dtype and device."""

    def run(h_ND: torch.Tensor) -> torch.Tensor:
        if h_ND.dtype == torch.float32 and (device is None or h_ND.device == device):
            return fn(h_ND)  # a float32 model: no conversion (this runs once per token)
        out_ND = fn(h_ND.to(device=device or h_ND.device, dtype=torch.float32))
        return out_ND.to(device=h_ND.device, dtype=h_ND.dtype)

    return run


def _flat(fn: Edit) -> Edit:
    """`fn` for 2-D h_ND only (matmuls), run on h of any leading shape."""

    def run(h: torch.Tensor) -> torch.Tensor:
        return fn(h) if h.ndim == 2 else fn(h.reshape(-1, h.shape[-1])).view(h.shape)

    return run


def _cc_device(cc: Crosscoder) -> torch.device:
    return cc.b_enc_L.device


def _on_device_of(t: torch.Tensor):
    """t, moved once to the device of the hidden states it meets (a model may span devices)."""
    copies = {t.device: t}

    def get(like: torch.Tensor) -> torch.Tensor:
        found = copies.get(like.device)
        if found is None:
            found = copies[like.device] = t.to(like.device)
        return found

    return get


def _bind_vector(spec: Intervention, v_D: torch.Tensor, d_model: int) -> Edit:
    if v_D.shape[0] != d_model:
        raise UserError(f"vector has {v_D.shape[0]} entries, but the model's hidden size is {d_model}")
    unit_on = _on_device_of(ops.unit_direction(v_D))
    if spec.op == "add":
        dose = float(spec.dose)  # type: ignore[arg-type]
        return _in_float32(lambda h: ops.add_relative(h, unit_on(h), dose))
    # steer / ablate / clamp treat the unit direction as a latent: f = h.u, d = u.
    op = _latent_op(spec)
    return _in_float32(_flat(lambda h: op(h, ops.project(h, unit_on(h)), unit_on(h)[None])))


def _bind_reconstruct(spec: Intervention, cc: Crosscoder, model: int) -> Edit:
    # "mismatched" replays the paper's artifact: raw activations fed to (and read back from)
    # a crosscoder trained on normalized ones, i.e. the normalization is skipped both ways.
    skip_norm = spec.normalization == "mismatched"

    def run(h_ND: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            f_NL = cc.encode_single(h_ND, model, normalized=skip_norm)
            x_hat_ND = cc.decode_single(f_NL, model, normalized=skip_norm)
        return ops.reconstruct(h_ND, x_hat_ND, spec.add_error)

    return _in_float32(_flat(run), _cc_device(cc))


def _bind_latents(spec: Intervention, cc: Crosscoder, model: int) -> Edit:
    source = spec.from_model if spec.from_model is not None else model
    latents = _owned_latents(spec, cc, source)
    with torch.no_grad():
        d_SD = torch.stack([cc.decoder_vector(i, source, raw=True) for i in latents]).float()
    if spec.op == "add":
        u_D, dose = ops.unit_direction(d_SD[0]), float(spec.dose)  # type: ignore[arg-type]
        return _in_float32(lambda h: ops.add_relative(h, u_D, dose), _cc_device(cc))
    op, read_f = _latent_op(spec), latent_reader(cc, model, latents)
    return _in_float32(_flat(lambda h_ND: op(h_ND, read_f(h_ND), d_SD)), _cc_device(cc))


LatentOp = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _latent_op(spec: Intervention) -> LatentOp:
    """(h_ND, f_NS, d_SD) -> new h_ND for steer / ablate / clamp, its knob read once."""
    if spec.op == "steer":
        alpha = float(spec.alpha)  # type: ignore[arg-type]
        return lambda h_ND, f_NS, d_SD: ops.steer(h_ND, f_NS, d_SD, alpha)
    if spec.op == "ablate":
        return ops.ablate
    if spec.op == "clamp":
        value = float(spec.value)  # type: ignore[arg-type]
        return lambda h_ND, f_NS, d_SD: ops.clamp(h_ND, f_NS, d_SD, value)
    raise UserError(f"op {spec.op!r} cannot act on latents")
