"""What a caller lets steering do: the allowed ops, a cap on each knob, how many items may stack.

One object holds a caller's caps, so each number is written once:
- `LIBRARY`: guard rails against typos, checked by every `Intervention` (the experiment's own
  grid lies far inside them): every op, |alpha| <= 1000, |dose| <= 100, |value| <= 1e6.
- the server's dial: `ServerSettings.steering_policy` (serve/config.py), from the settings'
  caps (|alpha| <= 128, |dose| <= 8, 16 items by default; `tooldiff serve --max-alpha ...`)
  and the dial's ops (no reconstruct).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal, Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tooldiff.errors import UserError

if TYPE_CHECKING:
    from tooldiff.interventions.spec import Intervention

Op = Literal["reconstruct", "steer", "add", "ablate", "clamp"]
OPS: tuple[str, ...] = ("reconstruct", "steer", "add", "ablate", "clamp")
# Which numeric knob each op needs; every other knob is rejected so typos cannot pass silently.
KNOB_OF_OP: dict[str, Optional[str]] = {
    "reconstruct": None, "steer": "alpha", "add": "dose", "ablate": None, "clamp": "value",
}
KNOBS = ("alpha", "dose", "value")


class SteeringPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    ops: tuple[Op, ...] = OPS
    max_abs_alpha: float = Field(1000.0, gt=0, allow_inf_nan=False)
    max_abs_dose: float = Field(100.0, gt=0, allow_inf_nan=False)
    max_abs_value: float = Field(1e6, gt=0, allow_inf_nan=False)
    max_items: int = Field(1024, ge=1)

    @field_validator("ops")
    @classmethod
    def _some_op(cls, ops: tuple[str, ...]) -> tuple[str, ...]:
        if not ops:
            raise ValueError("a policy must allow at least one op")
        return ops

    def cap(self, knob: str) -> float:
        return float(getattr(self, f"max_abs_{knob}"))

    def knob_problem(self, knob: str, value: Optional[float]) -> Optional[str]:
        """Why `knob=value` is refused (a finite value above its cap), or None."""
        if value is None or not math.isfinite(value) or abs(value) <= self.cap(knob):
            return None
        return f"{knob}={value:g} exceeds the cap |{knob}| <= {self.cap(knob):g}"

    def admit(self, specs: Sequence["Intervention"], where: str) -> None:
        """Raise a one-line UserError for the first spec this policy refuses (`where[i].field: why`)."""
        if len(specs) > self.max_items:
            raise UserError(f"{where}: {len(specs)} items exceed the cap of {self.max_items}")
        for i, spec in enumerate(specs):
            if spec.op not in self.ops:
                raise UserError(f"{where}[{i}].op: must be one of {', '.join(self.ops)}, got {spec.op!r}")
            for knob in KNOBS:
                problem = self.knob_problem(knob, getattr(spec, knob))
                if problem:
                    raise UserError(f"{where}[{i}].{knob}: {problem}")


LIBRARY = SteeringPolicy()
