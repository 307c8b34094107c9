"""Causal interventions on any HF decoder-only model at the output of decoder layer L.

reconstruct / steer / add / ablate / clamp, at last_prompt / prompt / generated / all
positions, per batch or per row, under batched generation with left padding and a KV cache.
A spec (spec.py) is validated once, admitted by a `SteeringPolicy` (policy.py), bound to a
model once (bind.py) and run by the hooks (hooks.py) as it was bound.
See docs/interventions.md for the formulas and the position semantics.
"""

from tooldiff.interventions.bind import BoundIntervention, bind
from tooldiff.interventions.generate import Completion, generate, generate_completions
from tooldiff.interventions.hooks import bind_interventions, intervene
from tooldiff.interventions.policy import LIBRARY, SteeringPolicy
from tooldiff.interventions.spec import (
    OPS, POSITIONS, Intervention, parse_intervention, parse_interventions, read_steering_file,
)

__all__ = [
    "LIBRARY", "OPS", "POSITIONS", "BoundIntervention", "Completion", "Intervention", "SteeringPolicy", "bind",
    "bind_interventions", "generate", "generate_completions", "intervene", "parse_intervention",
    "parse_interventions", "read_steering_file",
]
