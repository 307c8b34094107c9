"""The experiment's conditions: one intervention setting on one model, with its control panel.

Every effect condition (role "effect") names the controls that must be beaten: random
equal-norm directions ("control_random") and the least tool-related latents
("control_unrelated"); the difference-of-means rival is role "baseline".
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import torch

from tooldiff.experiment.config import ExperimentConfig
from tooldiff.interventions import Intervention

A, B = 0, 1  # model index: A = RL, B = base
MODEL_INDEX = {"rl": A, "base": B}


@dataclass(frozen=True)
class Condition:
    model: str  # "base" | "rl"
    intervention: str  # none | reconstruct | reconstruct_mismatched | steer | ablate | add | negative_steer
    crosscoder: str | None = None
    features: tuple = ()  # latent ids, or a direction label such as "random:3" / "dom:call_vs_nocall"
    alpha: float | None = None
    dose: float | None = None
    positions: str = "last_prompt"
    role: str = "effect"  # effect | control_random | control_unrelated | baseline | reference
    controls_for: str | None = None  # key of the effect condition this one controls
    specs: tuple[Intervention, ...] = field(default=(), compare=False)

    @property
    def key(self) -> str:
        """Stable id (resume key): everything that defines the condition, specs included."""
        body = json.dumps({**self.describe(), "specs": [s.to_json() for s in self.specs]}, sort_keys=True)
        return f"{self.model}/{self.intervention}/{hashlib.sha256(body.encode()).hexdigest()[:12]}"

    def describe(self) -> dict:
        return {"model": self.model, "intervention": self.intervention, "crosscoder": self.crosscoder,
                "features": list(self.features), "alpha": self.alpha, "dose": self.dose,
                "positions": self.positions, "role": self.role, "controls_for": self.controls_for}


@dataclass
class Candidates:
    """What the feature ranking hands the experiment for one crosscoder."""

    top: list[int]  # A-exclusive (or RL-side) latents ranked best first
    unrelated: list[int]  # least tool-related latents that still fire
    relative_size: dict[int, float]  # mean ‖f_i d_i‖/‖h‖ at the decision position (calibration)
    dom: dict[str, torch.Tensor]  # difference-of-means rivals, raw RL space
    random_DR: torch.Tensor  # random unit directions, one per row


def none_conditions(positions: str) -> list[Condition]:
    return [Condition(model=m, intervention="none", positions=positions, role="reference") for m in ("base", "rl")]


def _iv(layer: int, positions: str, **kw) -> Intervention:
    return Intervention(layer=layer, positions=positions, **kw)


def reconstruct_conditions(cc: str, layer: int, positions: str) -> list[Condition]:
    out = []
    for model in ("base", "rl"):
        for name, norm in (("reconstruct", "matched"), ("reconstruct_mismatched", "mismatched")):
            spec = _iv(layer, positions, op="reconstruct", normalization=norm)
            out.append(Condition(model=model, intervention=name, crosscoder=cc, positions=positions, specs=(spec,)))
    return out


def _random_controls(effect: Condition, cand: Candidates, dose: float, layer: int) -> list[Condition]:
    """Random unit directions added at the effect's mean relative perturbation size."""
    return [
        Condition(model=effect.model, intervention="add", crosscoder=effect.crosscoder,
                  features=(f"random:{r}",), dose=round(dose, 4), positions=effect.positions,
                  role="control_random", controls_for=effect.key,
                  specs=(_iv(layer, effect.positions, op="add", vector=cand.random_DR[r].tolist(), dose=dose),))
        for r in range(cand.random_DR.shape[0])
    ]


def _unrelated_controls(effect: Condition, cand: Candidates, n: int, layer: int, **op) -> list[Condition]:
    """The same op on the least tool-related latents (same alpha or dose)."""
    return [
        Condition(model=effect.model, intervention=effect.intervention, crosscoder=effect.crosscoder,
                  features=(u,), alpha=effect.alpha, dose=effect.dose, positions=effect.positions,
                  role="control_unrelated", controls_for=effect.key,
                  specs=(_iv(layer, effect.positions, feature=(u,), **op),))
        for u in cand.unrelated[:n]
    ]


def steer_conditions(cc: str, layer: int, cfg: ExperimentConfig, cand: Candidates) -> list[Condition]:
    """Steer the top-1 and top-|S| latents in RL on the alpha grid, each with its controls."""
    out: list[Condition] = []
    groups = [tuple(cand.top[:1]), tuple(cand.top[:cfg.top_s])] if cfg.top_s > 1 else [tuple(cand.top[:1])]
    for feats in dict.fromkeys(groups):
        for alpha in [a for a in cfg.alphas if a != 1]:  # alpha = 1 is the identity: it *is* "none"
            spec = _iv(layer, cfg.positions, op="steer", feature=feats, alpha=alpha)
            eff = Condition(model="rl", intervention="steer", crosscoder=cc, features=feats, alpha=alpha,
                            positions=cfg.positions, specs=(spec,))
            size = abs(alpha - 1) * sum(cand.relative_size.get(i, 0.0) for i in feats)
            out += [eff, *_random_controls(eff, cand, size, layer)]
            out += _unrelated_controls(eff, cand, cfg.n_unrelated, layer, op="steer", alpha=alpha)
    return out


def ablate_conditions(cc: str, layer: int, cfg: ExperimentConfig, cand: Candidates) -> list[Condition]:
    """Ablate (and steer negatively) the top latents in RL: does tool use need them?"""
    out: list[Condition] = []
    for feats in dict.fromkeys([tuple(cand.top[:1]), tuple(cand.top[:cfg.top_s])]):
        eff = Condition(model="rl", intervention="ablate", crosscoder=cc, features=feats, positions=cfg.positions,
                        specs=(_iv(layer, cfg.positions, op="ablate", feature=feats),))
        size = sum(cand.relative_size.get(i, 0.0) for i in feats)
        out += [eff, *_random_controls(eff, cand, -size, layer)]
        out += _unrelated_controls(eff, cand, cfg.n_unrelated, layer, op="ablate")
    feats = tuple(cand.top[:1])
    neg = Condition(model="rl", intervention="negative_steer", crosscoder=cc, features=feats,
                    alpha=cfg.negative_alpha, positions=cfg.positions,
                    specs=(_iv(layer, cfg.positions, op="steer", feature=feats, alpha=cfg.negative_alpha),))
    size = abs(cfg.negative_alpha - 1) * cand.relative_size.get(feats[0], 0.0)
    out += [neg, *_random_controls(neg, cand, -size, layer)]
    out += _unrelated_controls(neg, cand, cfg.n_unrelated, layer, op="steer", alpha=cfg.negative_alpha)
    return out


def transfer_conditions(cc: str, layer: int, cfg: ExperimentConfig, cand: Candidates) -> list[Condition]:
    """Add A's top decoder direction into the base (transfer without retraining), with controls
    and the difference-of-means rivals at the same doses."""
    out: list[Condition] = []
    top = cand.top[0]
    for dose in cfg.doses:
        eff = Condition(model="base", intervention="add", crosscoder=cc, features=(top,), dose=dose,
                        positions=cfg.positions,
                        specs=(_iv(layer, cfg.positions, op="add", feature=(top,), dose=dose, from_model=A),))
        out += [eff, *_random_controls(eff, cand, dose, layer)]
        out += _unrelated_controls(eff, cand, cfg.n_unrelated, layer, op="add", dose=dose, from_model=A)
        for name, v_D in cand.dom.items():
            out.append(Condition(model="base", intervention="add", crosscoder=cc, features=(f"dom:{name}",),
                                 dose=dose, positions=cfg.positions, role="baseline", controls_for=eff.key,
                                 specs=(_iv(layer, cfg.positions, op="add", vector=v_D.tolist(), dose=dose),)))
    return out


def crosscoder_conditions(cc: str, layer: int, cfg: ExperimentConfig, cand: Candidates) -> list[Condition]:
    if not cand.top:
        return reconstruct_conditions(cc, layer, cfg.positions)
    return (reconstruct_conditions(cc, layer, cfg.positions) + steer_conditions(cc, layer, cfg, cand)
            + ablate_conditions(cc, layer, cfg, cand) + transfer_conditions(cc, layer, cfg, cand))
