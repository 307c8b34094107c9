"""Per-request steering: validated interventions -> admitted by the server's policy -> bound once.

A request's `steering` arrives here already validated as `Intervention`s (schemas.py, strict
types, the op's knob, finite numbers). What could still fail inside a batch is checked here,
per request, before the request is queued: the server's policy (the dial's ops, its caps on
alpha and dose, how many items) and binding against the served model and crosscoder (layer in
range, latent exists and belongs to the served model, vector width). A bad item therefore
costs its own request a 400 and never the batch it would have joined. The bound interventions
travel with the job to the engine, which runs them as they are: nothing is parsed or bound
again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from torch import nn

from tooldiff.crosscoder import Crosscoder
from tooldiff.errors import UserError
from tooldiff.interventions import BoundIntervention, Intervention, SteeringPolicy, bind, read_steering_file

Steering = tuple[BoundIntervention, ...]
MEMO_SIZE = 4096  # bound specs remembered across requests (a memo, not a leak: it stops growing when full)


class SteeringBinder:
    """Admits and binds steering for one served model (and its optional crosscoder)."""

    def __init__(self, model: nn.Module, crosscoder: Optional[Crosscoder], model_index: int,
                 policy: SteeringPolicy, default_layer: Optional[int], profile: Optional[Path] = None):
        self.model, self.crosscoder, self.model_index = model, crosscoder, model_index
        self.policy, self.default_layer = policy, default_layer
        self._bound: dict[Intervention, BoundIntervention] = {}
        self.default: Steering = self.load_profile(Path(profile)) if profile else ()

    def for_request(self, specs: Optional[Sequence[Intervention]]) -> Steering:
        """The request's own steering, bound; or the server's default profile when it sent none."""
        return self.default if specs is None else self.admit(specs, "steering")

    def admit(self, specs: Sequence[Intervention], where: str) -> Steering:
        self.policy.admit(specs, where)
        return tuple(self._bind(spec, f"{where}[{i}]") for i, spec in enumerate(specs))

    def load_profile(self, path: Path) -> Steering:
        """A profile file: a JSON list of interventions, or {"steering": [...]}."""
        specs = read_steering_file(path, self.policy, self.default_layer)  # validated and admitted there
        try:
            return tuple(self._bind(spec, f"steering[{i}]") for i, spec in enumerate(specs))
        except UserError as e:
            raise UserError(f"steering file {path}: {e}") from None

    def _bind(self, spec: Intervention, where: str) -> BoundIntervention:
        found = self._bound.get(spec)
        if found is not None:
            return found
        try:
            bound = bind(spec, self.model, self.crosscoder, self.model_index)
        except UserError as e:
            raise UserError(f"{where}: {e}") from None
        if len(self._bound) < MEMO_SIZE:
            self._bound[spec] = bound
        return bound
