"""One intervention, as a validated and hashable value (SPEC section 3): the only wire model.

The same shape travels as JSON through the experiment's results, steering files (the bench's
`--steering`, the server's `--profile`) and the server's `steering` field:
`{feature | vector, layer, op, alpha | dose | value, positions, add_error}`. Validation is
strict (`"alpha": "5"` is an error, never a silent 5.0) and unknown keys are refused. Every
malformed intervention raises `UserError` with a one-line cause. Which ops and how large a
knob a caller accepts on top of that is its `SteeringPolicy` (policy.py).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator, model_validator

from tooldiff.errors import UserError, describe_validation, validated
from tooldiff.interventions.policy import KNOB_OF_OP, KNOBS, LIBRARY, OPS, Op, SteeringPolicy

Positions = Literal["last_prompt", "prompt", "generated", "all"]
POSITIONS: tuple[str, ...] = ("last_prompt", "prompt", "generated", "all")
__all__ = ["OPS", "POSITIONS", "Intervention", "Op", "Positions", "parse_intervention", "parse_interventions",
           "read_steering_file"]


class Intervention(BaseModel):
    """One edit of decoder layer `layer`'s output at the chosen positions.

    - reconstruct: h <- x_hat (+ (h - x_hat) when add_error); needs a crosscoder.
    - steer: h + sum_i (alpha - 1) f_i d_i.
    - add: h + dose * u * ||h||, u = the unit direction of `feature` (decoder of `from_model`) or `vector`.
    - ablate: h - sum_i f_i d_i.
    - clamp: h + sum_i (value - f_i) d_i.
    With `vector` instead of `feature`, the latent is the unit direction u itself: f = h.u, d = u.

    Built in code, a bad value raises pydantic's ValidationError (a bug in the caller); input
    from a user goes through `parse_intervention` or `read_steering_file` (a one-line UserError).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    op: Op
    layer: int
    feature: tuple[int, ...] | None = None
    vector: tuple[float, ...] | None = None
    alpha: float | None = None
    dose: float | None = None
    value: float | None = None
    positions: Positions = "last_prompt"
    add_error: bool = False
    normalization: Literal["matched", "mismatched"] = "matched"
    from_model: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_layer(cls, data: Any, info: ValidationInfo) -> Any:
        # A caller with a default layer (the server's --layer) passes it as validation context.
        default = (info.context or {}).get("default_layer")
        if isinstance(data, dict) and "layer" not in data and default is not None:
            return {**data, "layer": default}
        return data

    @field_validator("feature", mode="before")
    @classmethod
    def _feature_as_tuple(cls, v: Any) -> Any:
        if v is None or isinstance(v, bool):
            return v
        if hasattr(v, "tolist"):  # a tensor or an array of latent ids
            v = v.tolist()
        if isinstance(v, int):
            return (v,)
        return tuple(v) if isinstance(v, list) else v

    @field_validator("vector", mode="before")
    @classmethod
    def _vector_as_tuple(cls, v: Any) -> Any:
        if v is None:
            return v
        if hasattr(v, "detach"):  # torch tensor
            v = v.detach().float().cpu()
        if hasattr(v, "tolist"):
            v = v.tolist()
        if not isinstance(v, (list, tuple)) or (v and isinstance(v[0], (list, tuple))):
            raise ValueError("vector must be a flat list of numbers")
        return tuple(v)

    @model_validator(mode="after")
    def _check(self) -> "Intervention":
        self._check_target()
        self._check_knobs()
        self._check_op_only_fields()
        return self

    def _check_target(self) -> None:
        if self.feature is not None and self.vector is not None:
            raise ValueError("give either feature or vector, not both")
        if self.op == "reconstruct":
            if self.feature is not None or self.vector is not None:
                raise ValueError("reconstruct takes neither feature nor vector")
            return
        if self.feature is None and self.vector is None:
            raise ValueError(f"op {self.op!r} needs a feature (latent id) or a vector")
        if self.feature is not None:
            if not self.feature:
                raise ValueError("feature is an empty list")
            if any(i < 0 for i in self.feature):
                raise ValueError(f"latent ids must be >= 0, got {list(self.feature)}")
            if len(set(self.feature)) != len(self.feature):
                raise ValueError(f"latent ids repeat in {list(self.feature)}")
            if self.op == "add" and len(self.feature) != 1:
                raise ValueError("add takes one feature; stack several interventions to add several")
        if self.vector is not None:
            if not self.vector:
                raise ValueError("vector is empty")
            if not all(math.isfinite(x) for x in self.vector):
                raise ValueError("vector holds NaN or inf")

    def _check_knobs(self) -> None:
        needed = KNOB_OF_OP[self.op]
        for knob in KNOBS:
            given = getattr(self, knob)
            if knob != needed:
                if given is not None:
                    raise ValueError(f"{knob} is not used by op {self.op!r}")
                continue
            if given is None:
                raise ValueError(f"op {self.op!r} needs {knob}")
            if not math.isfinite(given):
                raise ValueError(f"{knob} must be finite, got {given}")
            problem = LIBRARY.knob_problem(knob, given)
            if problem:
                raise ValueError(problem)

    def _check_op_only_fields(self) -> None:
        if self.layer < 0:
            raise ValueError(f"layer must be >= 0, got {self.layer}")
        if self.add_error and self.op != "reconstruct":
            raise ValueError("add_error only applies to reconstruct")
        if self.normalization != "matched" and self.op != "reconstruct":
            raise ValueError("normalization='mismatched' only applies to reconstruct")
        if self.from_model is not None:
            if self.op != "add" or self.feature is None:
                raise ValueError("from_model only applies to add with a feature")
            if self.from_model not in (0, 1):
                raise ValueError(f"from_model must be 0 (A, RL) or 1 (B, base), got {self.from_model}")

    @property
    def uses_crosscoder(self) -> bool:
        return self.op == "reconstruct" or self.feature is not None

    def to_json(self) -> dict[str, Any]:
        """The compact JSON form (defaults and unused fields left out)."""
        out = self.model_dump(exclude_none=True, exclude_defaults=True)
        out["op"], out["layer"] = self.op, self.layer
        for key in ("feature", "vector"):
            if key in out:
                out[key] = list(out[key])
        return out


def parse_intervention(obj: Any) -> Intervention:
    """An Intervention from itself, a dict, or a JSON object string."""
    if isinstance(obj, Intervention):
        return obj
    if isinstance(obj, str):
        obj = _json(obj, "intervention")
    if not isinstance(obj, dict):
        raise UserError(f"an intervention must be a JSON object, got {type(obj).__name__}")
    return validated(Intervention, obj, "bad intervention")


def parse_interventions(obj: Any) -> list[Intervention]:
    """A list of interventions from a list of dicts/Interventions or a JSON array string."""
    if isinstance(obj, str):
        obj = _json(obj, "steering")
    if isinstance(obj, (dict, Intervention)):
        obj = [obj]
    if not isinstance(obj, (list, tuple)):
        raise UserError(f"interventions must be a list, got {type(obj).__name__}")
    return [parse_intervention(item) for item in obj]


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"bad {what} JSON: {e}") from None


class _SteeringList(BaseModel):
    """A steering file's content: `{"steering": [...]}` (a bare list is read as its `steering`)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    steering: list[Intervention]


def read_steering_file(path: Path, policy: SteeringPolicy = LIBRARY,
                       default_layer: Optional[int] = None) -> tuple[Intervention, ...]:
    """The interventions of a steering file (the bench's --steering, the server's --profile),
    validated as the server validates a request's `steering` and admitted by `policy`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"steering file {path} does not exist")
    try:
        raw = json.loads(path.read_text())
    except OSError as e:
        raise UserError(f"cannot read steering file {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise UserError(f"steering file {path} is not valid JSON: {e}") from None
    try:
        specs = tuple(_SteeringList.model_validate({"steering": raw} if isinstance(raw, list) else raw,
                                                   context={"default_layer": default_layer}).steering)
        policy.admit(specs, "steering")
    except ValidationError as e:
        raise UserError(f"steering file {path}: {describe_validation(e)}") from None
    except UserError as e:
        raise UserError(f"steering file {path}: {e}") from None
    return specs
