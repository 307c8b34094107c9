"""The positive-control variant: RL may change only a rank-1 update of one layer's output.

The update lives in the MLP's output projection of decoder layer L:

    down_proj'(m) = W m + u (vᵀ m)        i.e. W' = W + u vᵀ,

where m is the MLP's hidden activation at that position. The layer's output (the residual stream
after layer L) therefore changes by exactly g(x)·u with gate g(x) = vᵀ m(x): a learned direction u
and a learned, input-dependent gate, and nothing else changes at or below layer L. Folding it
into W keeps `rl/` a plain Qwen2ForCausalLM that AutoModelForCausalLM loads as is.

The gate is centred: v is kept orthogonal to m̄, the base's mean MLP activation over every
token of rl-split prompts, so over those tokens the gate averages zero. Unconstrained, RL planted
a constant: v aligned with the always-on part of m, a gate of -13.4 ± 0.15 on every kind of
prompt (default, seed 0), i.e. a shift of the whole activation cloud that a crosscoder puts in
its decoder bias, not in a latent. Centred at the decision token only, RL moved the shift to
the other tokens (gate -0.1 ± 0.4 at the decision token, 4.3 ± 5.3 elsewhere). A gate centred
over all tokens can only act by telling tokens apart, which is the kind of change the
instruments claim to find.

Ground truth for the instruments: the unit direction û = u/‖u‖ in the residual space of layer L,
and the gate readout v. Exact ablation of the planted change is "subtract g(x)·u at layer L",
which is the same as putting W back (the base); projecting û out of the layer output removes
the planted change *and* whatever the base already had along û.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from tooldiff.hf import decoder_layers, layer_hidden, with_layer_hidden

PLANTED_FILE = "planted_direction.safetensors"


class Rank1DownProj(nn.Module):
    """A frozen linear layer plus a trainable rank-1 update u vᵀ, v orthogonal to `mean_I`."""

    def __init__(self, base: nn.Linear, seed: int, mean_I: torch.Tensor | None = None):
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        generator = torch.Generator().manual_seed(seed)
        d_out, d_in = base.weight.shape
        # LoRA-style start: u = 0 (the model starts as the base), v random so u gets gradients.
        self.u_D = nn.Parameter(torch.zeros(d_out))
        self.v_I = nn.Parameter(torch.randn(d_in, generator=generator) / d_in ** 0.5)
        unit_I = torch.zeros(d_in) if mean_I is None else mean_I / mean_I.norm()
        self.register_buffer("mean_unit_I", unit_I.to(base.weight.dtype), persistent=False)

    def readout_I(self) -> torch.Tensor:
        """v without its component along the mean activation: the gate is centred."""
        return self.v_I - (self.v_I @ self.mean_unit_I) * self.mean_unit_I

    def forward(self, m_BTI: torch.Tensor) -> torch.Tensor:
        gate_BT1 = m_BTI @ self.readout_I().unsqueeze(-1)
        return self.base(m_BTI) + gate_BT1 * self.u_D

    def folded(self) -> nn.Linear:
        """The plain Linear with W + u vᵀ: identical outputs, standard weights."""
        with torch.no_grad():
            self.base.weight += torch.outer(self.u_D, self.readout_I())
        for p in self.base.parameters():
            p.requires_grad_(True)
        return self.base


def middle_layer(model) -> int:
    return (len(decoder_layers(model)) - 1) // 2


@torch.no_grad()
def mean_prompt_activation(model, tokenizer, prompts: list[str], layer: int, batch_size: int = 64) -> torch.Tensor:
    """The mean MLP activation m (the input of down_proj) of layer `layer` over every token of the
    prompts (pads excluded)."""
    down_proj = decoder_layers(model)[layer].mlp.down_proj
    total_I, count = None, 0
    mask_BT = None

    def accumulate(module, args):
        nonlocal total_I, count
        m_NI = args[0][mask_BT]
        total_I = m_NI.sum(0) if total_I is None else total_I + m_NI.sum(0)
        count += m_NI.shape[0]

    handle = down_proj.register_forward_pre_hook(accumulate)
    try:
        for start in range(0, len(prompts), batch_size):
            batch = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True,
                              add_special_tokens=False)
            mask_BT = batch["attention_mask"].bool()
            model(**batch)
    finally:
        handle.remove()
    return total_I / count


def plant_rank1(model, layer: int, seed: int, mean_I: torch.Tensor | None = None) -> Rank1DownProj:
    """Freeze every weight of `model` and give layer `layer` a trainable rank-1 down_proj update,
    whose gate readout is kept orthogonal to `mean_I` (None: unconstrained)."""
    for p in model.parameters():
        p.requires_grad_(False)
    mlp = decoder_layers(model)[layer].mlp
    mlp.down_proj = Rank1DownProj(mlp.down_proj, seed, mean_I)
    return mlp.down_proj


def fold_rank1(model, layer: int) -> dict[str, torch.Tensor]:
    """Fold the update into down_proj; returns the planted direction and gate readout.

    `direction_D` is the unit vector û = u/‖u‖ and `gate_I` = ‖u‖·v, so that the change of
    layer L's output is exactly (gate_I · m(x)) û. If RL never moved u (no reward signal at
    all), both are zero: the build records `update_norm` 0 and the positive control has nothing
    to find.
    """
    mlp = decoder_layers(model)[layer].mlp
    adapter: Rank1DownProj = mlp.down_proj
    u_D = adapter.u_D.detach().clone()
    v_I = adapter.readout_I().detach().clone()
    mlp.down_proj = adapter.folded()
    norm = u_D.norm()
    if norm == 0:
        return {"direction_D": torch.zeros_like(u_D), "gate_I": torch.zeros_like(v_I)}
    return {"direction_D": u_D / norm, "gate_I": v_I * norm}


def save_planted(planted: dict[str, torch.Tensor], layer: int, path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in planted.items()}, str(path), metadata={"layer": str(layer)})


def load_planted(path: Path) -> tuple[dict[str, torch.Tensor], int]:
    """The planted direction/gate and their layer, from the safetensors file (no pickle)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        layer = int(f.metadata()["layer"])
        return {k: f.get_tensor(k) for k in f.keys()}, layer


class project_out:  # noqa: N801 - used as a context manager, reads like a verb
    """Context manager: remove the component along a unit direction from layer L's output."""

    def __init__(self, model, layer: int, direction_D: torch.Tensor):
        self.layer_module = decoder_layers(model)[layer]
        self.unit_D = direction_D / direction_D.norm()
        self.handle = None

    def _hook(self, module, args, output):
        h_BTD = layer_hidden(output)
        coef_BT1 = h_BTD @ self.unit_D.unsqueeze(-1)
        return with_layer_hidden(output, h_BTD - coef_BT1 * self.unit_D)

    def __enter__(self):
        self.handle = self.layer_module.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


class subtract_planted:  # noqa: N801 - used as a context manager, reads like a verb
    """Context manager: exact ablation, subtract g(x)·u at layer L (the RL model becomes the base)."""

    def __init__(self, model, layer: int, planted: dict[str, torch.Tensor]):
        self.down_proj = decoder_layers(model)[layer].mlp.down_proj
        self.direction_D = planted["direction_D"]
        self.gate_I = planted["gate_I"]
        self.handle = None

    def _hook(self, module, args, output_BTD):
        (m_BTI,) = args
        gate_BT1 = m_BTI @ self.gate_I.unsqueeze(-1)
        return output_BTD - gate_BT1 * self.direction_D

    def __enter__(self):
        self.handle = self.down_proj.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc):
        self.handle.remove()
