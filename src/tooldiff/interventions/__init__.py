"""Causal interventions on any HF decoder-only model at the output of decoder layer L.

reconstruct / steer / add / ablate / clamp, at last_prompt / prompt / generated / all
positions, per batch or per row, under batched generation with left padding and a KV cache.
See docs/interventions.md for the formulas and the position semantics.
"""

from tooldiff.interventions.bind import BoundIntervention, bind
from tooldiff.interventions.generate import Completion, generate, generate_completions
from tooldiff.interventions.hooks import intervene
from tooldiff.interventions.spec import (
    OPS, POSITIONS, Intervention, parse_intervention, parse_interventions,
)

__all__ = [
    "OPS", "POSITIONS", "BoundIntervention", "Completion", "Intervention", "bind", "generate",
    "generate_completions", "intervene", "parse_intervention", "parse_interventions",
]
