"""Per-request steering: raw JSON -> interventions checked against the served model.

Everything that could fail inside a batch is checked here, per request, before the request
is queued: the shape of each item (strict types, the op's knob, finite numbers), the server's
guard rails on alpha and dose, and binding against the model and crosscoder (layer in range,
latent exists and belongs to the served model, vector width). A bad item therefore costs its
own request a 400 and never the batch it would have joined.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from pydantic import ValidationError
from torch import nn

from tooldiff.crosscoder import Crosscoder
from tooldiff.errors import UserError
from tooldiff.interventions import Intervention, bind
from tooldiff.serve.config import ServerSettings
from tooldiff.serve.schemas import SteeringItem, describe_error

STEERING_OPS = ("steer", "add", "ablate", "clamp")  # the dial; reconstruct is a research tool
Steering = tuple[Intervention, ...]


class SteeringPolicy:
    """Parses and checks steering for one served model (and its optional crosscoder)."""

    def __init__(self, model: nn.Module, crosscoder: Optional[Crosscoder], model_index: int, settings: ServerSettings):
        self.model, self.crosscoder, self.model_index = model, crosscoder, model_index
        self.settings = settings
        self.default_layer = settings.layer if settings.layer is not None else (
            crosscoder.info.layer if crosscoder is not None else None)
        self._checked: dict[Intervention, None] = {}  # specs already bound once (bounded)
        self.default: Steering = self.load_profile(Path(settings.profile)) if settings.profile else ()

    def for_request(self, raw: Optional[list[Any]]) -> Steering:
        """The request's own steering, or the server's default profile when it sent none."""
        return self.default if raw is None else self.parse(raw, where="steering")

    def parse(self, raw: Any, where: str) -> Steering:
        if not isinstance(raw, list):
            raise UserError(f"{where}: must be a list of interventions, got {type(raw).__name__}")
        if len(raw) > self.settings.max_steering_items:
            raise UserError(f"{where}: {len(raw)} items exceed the cap of {self.settings.max_steering_items}")
        return tuple(self._item(item, f"{where}[{i}]") for i, item in enumerate(raw))

    def load_profile(self, path: Path) -> Steering:
        """A profile file: a JSON list of interventions, or {"steering": [...]}."""
        try:
            raw = json.loads(path.read_text())
        except OSError as e:
            raise UserError(f"cannot read steering profile {path}: {e.strerror}") from None
        except json.JSONDecodeError as e:
            raise UserError(f"steering profile {path} is not valid JSON: {e}") from None
        if isinstance(raw, dict) and "steering" in raw:
            raw = raw["steering"]
        try:
            return self.parse(raw, where="profile")
        except UserError as e:
            raise UserError(f"steering profile {path}: {e}") from None

    def _item(self, item: Any, where: str) -> Intervention:
        if not isinstance(item, dict):
            raise UserError(f"{where}: an intervention must be a JSON object, got {type(item).__name__}")
        if "layer" not in item and self.default_layer is not None:
            item = {**item, "layer": self.default_layer}
        spec = self._validated(item, where)
        self._check_caps(spec, where)
        if spec not in self._checked:
            try:
                bind(spec, self.model, self.crosscoder, self.model_index)
            except UserError as e:
                raise UserError(f"{where}: {e}") from None
            if len(self._checked) < 4096:  # a memo, not a leak: stop remembering when full
                self._checked[spec] = None
        return spec

    @staticmethod
    def _validated(item: dict, where: str) -> Intervention:
        if item.get("op") not in STEERING_OPS:
            raise UserError(f"{where}.op: must be one of {', '.join(STEERING_OPS)}, got {item.get('op')!r}")
        if "layer" not in item:
            raise UserError(f"{where}.layer: required (the server has no default layer; start it with --layer)")
        try:
            # Strict types first ("alpha": "5" is an error, not a silent 5.0), then the semantics.
            wire = SteeringItem.model_validate(item, strict=True)
        except ValidationError as e:
            raise UserError(f"{where}: {describe_error(e)}") from None
        try:
            return Intervention(**wire.model_dump(exclude_none=True))
        except UserError as e:
            raise UserError(f"{where}: {str(e).removeprefix('bad intervention: ')}") from None

    def _check_caps(self, spec: Intervention, where: str) -> None:
        caps = {"alpha": self.settings.max_abs_alpha, "dose": self.settings.max_abs_dose}
        for knob, cap in caps.items():
            value = getattr(spec, knob)
            if value is not None and abs(value) > cap:
                raise UserError(f"{where}.{knob}: |{value}| exceeds this server's cap of {cap:g}")
