"""Crosscoders and Dedicated Feature Crosscoders over two models' activations.

`Crosscoder` is the trained dictionary (encode / decode / decoder vectors / checkpoints);
`train_sweep` trains one configuration or a whole sweep in a single pass over the data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tooldiff.crosscoder.config import CrosscoderConfig, SweepConfig, TrainConfig, load_sweep
from tooldiff.crosscoder.model import CheckpointInfo, Crosscoder


def train_sweep(acts: Any, config: Any, out: str | Path, device: str = "cpu") -> dict[str, dict]:
    """Train every configuration of a sweep; see `tooldiff.crosscoder.train.train_sweep`."""
    # Imported here so that `import tooldiff.crosscoder` (interventions, features) stays light.
    from tooldiff.crosscoder.train import train_sweep as _train_sweep

    return _train_sweep(acts=acts, config=config, out=out, device=device)


__all__ = [
    "CheckpointInfo", "Crosscoder", "CrosscoderConfig", "SweepConfig", "TrainConfig",
    "load_sweep", "train_sweep",
]
