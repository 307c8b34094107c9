"""The experiment's conditions: one intervention setting on one model, with its control panel.

An effect condition (role "effect") lists the keys of the controls it must beat: random
equal-norm directions ("control_random", shared by every crosscoder and effect of the same
size) and the least tool-related latents ("control_unrelated"); and of its rivals, the
difference-of-means directions at the same dose (role "baseline"): added into the base beside a
transfer, and into RL beside a steer up (at the steer's relative size).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field

import torch

from tooldiff.experiment.config import ExperimentConfig
from tooldiff.interventions import Intervention, parse_intervention

A, B = 0, 1  # model index: A = RL, B = base
MODEL_INDEX = {"rl": A, "base": B}
# Random controls are dosed to the effect's mean relative size, rounded to this grid (log-nearest)
# so that effects of similar size share one panel instead of each generating its own.
CONTROL_DOSES = (0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0)


@dataclass(frozen=True)
class Condition:
    model: str  # "base" | "rl"
    intervention: str  # none | reconstruct | reconstruct_mismatched | steer | ablate | ablate_direction | add | negative_steer
    crosscoder: str | None = None
    features: tuple = ()  # latent ids, or a direction label such as "random:3" / "dom:call_vs_nocall"
    alpha: float | None = None
    dose: float | None = None
    positions: str = "last_prompt"
    role: str = "effect"  # effect | control_random | control_unrelated | baseline | reference
    controls: tuple[str, ...] = ()  # keys of the control conditions (effects only)
    rivals: tuple[str, ...] = ()  # keys of the difference-of-means conditions at the same dose
    specs: tuple[Intervention, ...] = field(default=(), compare=False)

    @property
    def key(self) -> str:
        """Stable id (the resume key): what defines the condition, its interventions included."""
        body = json.dumps({**self.identity(), "specs": [s.to_json() for s in self.specs]}, sort_keys=True)
        return f"{self.model}/{self.intervention}/{hashlib.sha256(body.encode()).hexdigest()[:12]}"

    def identity(self) -> dict:
        return {"model": self.model, "intervention": self.intervention, "crosscoder": self.crosscoder,
                "features": list(self.features), "alpha": self.alpha, "dose": self.dose,
                "positions": self.positions, "role": self.role}

    def describe(self) -> dict:
        return {**self.identity(), "controls": list(self.controls), "rivals": list(self.rivals)}


@dataclass
class Candidates:
    """What the feature ranking hands the experiment for one crosscoder."""

    top: list[int]  # A-exclusive (or RL-side) latents ranked best first
    unrelated: list[int]  # least tool-related latents that still fire
    relative_size: dict[int, float]  # mean ‖f_i d_i‖/‖h‖ at the decision position (calibration)
    dom: dict[str, torch.Tensor]  # difference-of-means rivals, raw RL space
    random_DR: torch.Tensor  # random unit directions, one per row
    # A-side decoder directions (raw RL space) of the top latent and the unrelated ones, for
    # directional ablation; empty: no such conditions.
    directions: dict[int, torch.Tensor] = field(default_factory=dict)


def none_conditions(positions: str) -> list[Condition]:
    return [Condition(model=m, intervention="none", positions=positions, role="reference") for m in ("base", "rl")]


def _iv(layer: int, positions: str, **kw) -> Intervention:
    return parse_intervention(dict(layer=layer, positions=positions, **kw))  # knobs from the config: one-line errors


def control_dose(size: float) -> float:
    """The shared-panel dose nearest (in log space) to an effect's relative size."""
    size = max(abs(size), CONTROL_DOSES[0])
    return min(CONTROL_DOSES, key=lambda c: abs(math.log(c / size)))


def random_controls(model: str, size: float, cand: Candidates, layer: int, positions: str) -> list[Condition]:
    """Random unit directions added at the effect's (grid-rounded) relative size; no crosscoder,
    so every effect of that size on that model shares them."""
    dose = control_dose(size)
    return [
        Condition(model=model, intervention="add", features=(f"random:{r}",), dose=dose, positions=positions,
                  role="control_random",
                  specs=(_iv(layer, positions, op="add", vector=cand.random_DR[r].tolist(), dose=dose),))
        for r in range(cand.random_DR.shape[0])
    ]


def unrelated_controls(model: str, intervention: str, cc: str, cand: Candidates, n: int, layer: int,
                       positions: str, **op) -> list[Condition]:
    """The same op on the least tool-related latents (same alpha or dose)."""
    return [
        Condition(model=model, intervention=intervention, crosscoder=cc, features=(u,), alpha=op.get("alpha"),
                  dose=op.get("dose"), positions=positions, role="control_unrelated",
                  specs=(_iv(layer, positions, feature=(u,), **op),))
        for u in cand.unrelated[:n]
    ]


def with_panel(effect: Condition, controls: list[Condition], rivals: list[Condition] = ()) -> list[Condition]:
    """The effect, now naming its controls and rivals, followed by them."""
    from dataclasses import replace

    linked = replace(effect, controls=tuple(c.key for c in controls), rivals=tuple(r.key for r in rivals))
    return [linked, *controls, *rivals]


def reconstruct_conditions(cc: str, layer: int, positions: str) -> list[Condition]:
    out = []
    for model in ("base", "rl"):
        for name, norm in (("reconstruct", "matched"), ("reconstruct_mismatched", "mismatched")):
            spec = _iv(layer, positions, op="reconstruct", normalization=norm)
            out.append(Condition(model=model, intervention=name, crosscoder=cc, positions=positions, specs=(spec,)))
    return out


def _latent_op(cc: str, layer: int, cfg: ExperimentConfig, cand: Candidates, name: str, feats: tuple,
               size: float, rivals: tuple = (), **op) -> list[Condition]:
    """One RL-side latent op (steer / ablate / negative steer) with its control panel."""
    pos = cfg.positions
    effect = Condition(model="rl", intervention=name, crosscoder=cc, features=feats, alpha=op.get("alpha"),
                       positions=pos, specs=(_iv(layer, pos, feature=feats, **op),))
    controls = (random_controls("rl", size, cand, layer, pos)
                + unrelated_controls("rl", name, cc, cand, cfg.n_unrelated, layer, pos, **op))
    return with_panel(effect, controls, list(rivals))


def dom_steer_rivals(size: float, cand: Candidates, layer: int, positions: str) -> list[Condition]:
    """The difference-of-means directions added into RL at a steer's (grid-rounded) relative size:
    what steering up along the plain mean difference does, with no crosscoder (shared by the sweep)."""
    dose = control_dose(size)
    return [Condition(model="rl", intervention="add", features=(f"dom:{name}",), dose=dose, positions=positions,
                      role="baseline", specs=(_iv(layer, positions, op="add", vector=v_D.tolist(), dose=dose),))
            for name, v_D in cand.dom.items()]


def latent_sets(cfg: ExperimentConfig, cand: Candidates) -> list[tuple]:
    """The latent sets a steer or an ablation acts on: the top latent and, if the grid runs them,
    the top |S|."""
    sets = [tuple(cand.top[:1])] + ([tuple(cand.top[:cfg.top_s])] if cfg.runs("top_s") else [])
    return list(dict.fromkeys(sets))


def steer_conditions(cc: str, layer: int, cfg: ExperimentConfig, cand: Candidates) -> list[Condition]:
    """Steer the top-1 and top-|S| latents in RL on the alpha grid (alpha = 1 *is* `none`)."""
    out: list[Condition] = []
    for feats in latent_sets(cfg, cand):
        for alpha in [a for a in cfg.alphas if a != 1]:
            size = abs(alpha - 1) * sum(cand.relative_size.get(i, 0.0) for i in feats)
            rivals = dom_steer_rivals(size, cand, layer, cfg.positions) if alpha > 1 else ()
            out += _latent_op(cc, layer, cfg, cand, "steer", feats, size, rivals, op="steer", alpha=alpha)
    return out


def ablate_conditions(cc: str, layer: int, cfg: ExperimentConfig, cand: Candidates) -> list[Condition]:
    """Ablate the top latents, and steer the top one negatively, in RL: does tool use need them?"""
    out: list[Condition] = []
    for feats in latent_sets(cfg, cand):
        size = sum(cand.relative_size.get(i, 0.0) for i in feats)
        out += _latent_op(cc, layer, cfg, cand, "ablate", feats, size, op="ablate")
    top = tuple(cand.top[:1])
    size = abs(cfg.negative_alpha - 1) * cand.relative_size.get(top[0], 0.0)
    out += _latent_op(cc, layer, cfg, cand, "negative_steer", top, size, op="steer", alpha=cfg.negative_alpha)
    return out


def direction_ablation_conditions(cc: str, layer: int, cfg: ExperimentConfig, cand: Candidates) -> list[Condition]:
    """Project the top latent's decoder direction out of RL's activations (directional ablation).

    Latent ablation removes f_i d_i, only what the latent's activation carries; a change the
    crosscoder spreads over the decoder bias, the error term or a second latent along -d_i stays.
    Projecting the direction out removes every component along it. Controls: random directions
    and the unrelated latents' directions, projected out the same way."""
    top, pos = tuple(cand.top[:1]), cfg.positions
    if not top or top[0] not in cand.directions:
        return []

    def projected(direction_D: torch.Tensor, features: tuple, role: str, crosscoder: str | None) -> Condition:
        return Condition(model="rl", intervention="ablate_direction", crosscoder=crosscoder, features=features,
                         positions=pos, role=role, specs=(_iv(layer, pos, op="ablate", vector=direction_D.tolist()),))

    controls = [projected(cand.random_DR[r], (f"random:{r}",), "control_random", None)
                for r in range(cand.random_DR.shape[0])]
    controls += [projected(cand.directions[u], (u,), "control_unrelated", cc)
                 for u in cand.unrelated[:cfg.n_unrelated] if u in cand.directions]
    return with_panel(projected(cand.directions[top[0]], top, "effect", cc), controls)


def dom_conditions(cand: Candidates, dose: float, layer: int, positions: str) -> list[Condition]:
    """The difference-of-means rivals added into the base (no crosscoder: shared by the sweep)."""
    return [Condition(model="base", intervention="add", features=(f"dom:{name}",), dose=dose, positions=positions,
                      role="baseline", specs=(_iv(layer, positions, op="add", vector=v_D.tolist(), dose=dose),))
            for name, v_D in cand.dom.items()]


def transfer_conditions(cc: str, layer: int, cfg: ExperimentConfig, cand: Candidates) -> list[Condition]:
    """Add A's top decoder direction into the base (transfer without retraining)."""
    out: list[Condition] = []
    top, pos = (cand.top[0],), cfg.positions
    for dose in cfg.doses:
        op = {"op": "add", "dose": dose, "from_model": A}
        effect = Condition(model="base", intervention="add", crosscoder=cc, features=top, dose=dose, positions=pos,
                           specs=(_iv(layer, pos, feature=top, **op),))
        controls = (random_controls("base", dose, cand, layer, pos)
                    + unrelated_controls("base", "add", cc, cand, cfg.n_unrelated, layer, pos, **op))
        out += with_panel(effect, controls, dom_conditions(cand, dose, layer, pos))
    return out


def crosscoder_conditions(cc: str, layer: int, cfg: ExperimentConfig, cand: Candidates) -> list[Condition]:
    """Every condition of the grid (cfg.grid) on one crosscoder."""
    conditions = reconstruct_conditions(cc, layer, cfg.positions) if cfg.runs("splice") else []
    if not cand.top:
        return conditions
    families = (("steer", steer_conditions), ("ablate", ablate_conditions), ("ablate", direction_ablation_conditions),
                ("transfer", transfer_conditions))
    for family, build in families:
        if cfg.runs(family):
            conditions += build(cc, layer, cfg, cand)
    return conditions
