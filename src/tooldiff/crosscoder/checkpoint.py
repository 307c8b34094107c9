"""Resume states of a sweep: everything needed to continue bit-for-bit after a kill.

A state is a directory `_state/step-NNNNNNNN/` with `state.safetensors` (weights, Adam
moments, BatchTopK thresholds, dead-latent counters, the torch RNG) and `state.json`
(step, sweep digest, data hash, data seed, loss history). It is written to a temporary
directory and renamed into place, so a SIGKILL mid-write leaves the previous state intact.
The data order is a pure function of (data_seed, step), so the step is the data position.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Optional

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from tooldiff.errors import UserError

STATE_DIR = "_state"


def _state_dirs(out: Path) -> list[Path]:
    root = out / STATE_DIR
    if not root.is_dir():
        return []
    done = [p for p in root.glob("step-*") if (p / "state.json").is_file() and not p.name.endswith(".tmp")]
    return sorted(done, key=lambda p: int(p.name.split("-")[1]))


def save_state(out: Path, step: int, tensors: dict[str, torch.Tensor], meta: dict, keep: int) -> Path:
    root = out / STATE_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = root / f"step-{step:08d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp / "state.safetensors"))
    (tmp / "state.json").write_text(json.dumps({**meta, "step": step}))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in _state_dirs(out)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_state(out: Path) -> Optional[tuple[dict[str, torch.Tensor], dict]]:
    """The newest complete state, or None. A corrupt one is an error, never silently skipped."""
    states = _state_dirs(out)
    if not states:
        return None
    path = states[-1]
    try:
        meta = json.loads((path / "state.json").read_text())
        tensors = load_file(str(path / "state.safetensors"))
    except (json.JSONDecodeError, SafetensorError, OSError) as e:
        raise UserError(f"resume state {path} is corrupt ({str(e).splitlines()[0]}); delete it to resume from an "
                        "earlier one") from None
    return tensors, meta
