"""Emergence, second view: a crosscoder of its own at a few RL checkpoints.

emergence.py reads every checkpoint with the final twin's crosscoder; a latent that a crosscoder
of an early checkpoint would have found on its own is invisible there. So, at a few steps (first,
middle, last, the kept twin), the pipeline's own chain runs on the (checkpoint, base) pair:
harvest the crosscoder training prompts (`demo.training_data`), train the final crosscoder's
configuration (its sweep's `[train]` section, same seed) with `train_sweep`, harvest the
calibration split, rank the latents (`rank_features`) and pick the top latent as the experiment
does (`top_latents`, with its contrast and pool).

When does an RL-exclusive tool latent "pass the selection"? By the tool-feature selection rule
of features/ranking.py (`passes_selection`: RL-exclusive, strict AUROC at least `min_auroc`;
provisional), applied to the picked latent; the paper's latent had AUROC 0.9996. The first step
where it passes is reported. The null pairs (tooldiff/nullpairs.py) count by the same rule.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from tooldiff.errors import UserError
from tooldiff.features.ranking import passes_selection
RETRAINED_DIR = "retrained"  # under the emergence output


@dataclass(frozen=True)
class Retrained:
    """A crosscoder trained on one (checkpoint, base) pair and its top RL-side latent."""

    step: int
    crosscoder: str  # its checkpoint directory
    latent: Optional[int]
    group: Optional[str]
    strict_auroc: Optional[float]  # should-call vs no-call, calibration, decision position
    strict_d: Optional[float]
    firing_call: Optional[float]  # share of calibration call prompts it fires on
    cos_final: Optional[float]  # cosine of its RL-side decoder direction with the final latent's
    passes: bool


def pick_steps(spec: str, saved: list[int], kept: Optional[int]) -> list[int]:
    """`auto`: the first saved step, the middle one, the last and the kept twin's; or a comma
    list of saved steps; empty: none."""
    spec = spec.strip()
    if not spec:
        return []
    if spec == "auto":
        return sorted({saved[0], saved[len(saved) // 2], saved[-1]} | ({kept} if kept in saved else set()))
    try:
        steps = sorted({int(s) for s in spec.split(",") if s.strip()})
    except ValueError:
        raise UserError(f"--train-at must be 'auto' or a comma list of RL steps, got {spec!r}") from None
    missing = [s for s in steps if s not in saved]
    if missing:
        raise UserError(f"no saved RL checkpoint at step(s) {missing}; saved: {saved}")
    return steps


def _sweep_of(crosscoder_dir: Path, cc):
    """The final crosscoder's configuration under the [train] section its sweep used."""
    from tooldiff.crosscoder.config import SweepConfig, TrainConfig
    from tooldiff.crosscoder.train import SWEEP_FILE

    sweep_file = crosscoder_dir.parent / SWEEP_FILE
    train = TrainConfig()
    if sweep_file.is_file():
        train = TrainConfig.model_validate(json.loads(sweep_file.read_text())["sweep"]["train"])
    return SweepConfig(train=train, crosscoder=[cc.cfg])


def _harvest(models: tuple, org, names: tuple[str, str], data: Path, out: Path, layer: int, device: str):
    from tooldiff.activations.harvest import HarvestSettings, harvest_models
    from tooldiff.activations.records import read_records

    settings = HarvestSettings(layer=layer, positions="decision", device=device)
    harvest_models(models, org.tokenizer, names, read_records(data), data, out, settings)


def train_at(step: int, model, org, instrument, out: Path, device: str, min_auroc: float) -> Retrained:
    """harvest → train → calibration harvest → rank for (checkpoint `step`, base), with the final
    crosscoder's configuration (`instrument`: emergence.Instrument)."""
    from tooldiff.crosscoder import Crosscoder, train_sweep
    from tooldiff.experiment.candidates import top_latents
    from tooldiff.pair import write_records
    from tooldiff.experiment.data import calibration_acts
    from tooldiff.features import rank_features
    from tooldiff.features.ranking import write_ranking
    from tooldiff.organism.checkpoints import checkpoint_file

    here = out / RETRAINED_DIR / f"step-{step:04d}"
    names = (str(checkpoint_file(org.rl_path, step)), str(org.base_path))
    with tempfile.TemporaryDirectory(prefix="emergence-train-") as tmp:
        pair = org.as_pair()
        data = pair.split_file("train", Path(tmp) / "train_prompts.jsonl")
        _harvest((model, org.base), org, names, data, Path(tmp) / "acts", instrument.layer, device)
        train_sweep(acts=Path(tmp) / "acts", config=_sweep_of(instrument.directory, instrument.crosscoder),
                    out=here / "crosscoders", device=device)
        calibration = write_records(pair.records("calibration"), Path(tmp) / "calibration.jsonl")
        _harvest((model, org.base), org, names, calibration, Path(tmp) / "calibration_acts", instrument.layer, device)
        acts = calibration_acts(Path(tmp) / "calibration_acts", calibration)
    cc_dir = here / "crosscoders" / instrument.name
    cc = Crosscoder.load(cc_dir)
    ranking = rank_features(cc, acts)
    write_ranking(here, instrument.name, ranking, cc_dir)
    top = top_latents(cc, ranking, instrument.contrast, 1, instrument.pool)
    return _summary(step, cc, cc_dir, ranking, top[0] if top else None, instrument, min_auroc)


def _summary(step: int, cc, cc_dir: Path, ranking: dict, latent: Optional[int], instrument,
             min_auroc: float) -> Retrained:
    if latent is None:
        return Retrained(step, str(cc_dir), None, None, None, None, None, None, False)
    stats = next(r for r in ranking["latents"] if r["latent"] == latent)
    final_D = instrument.crosscoder.decoder_vector(instrument.latent, 0, raw=True).float()
    cos = float(torch.cosine_similarity(cc.decoder_vector(latent, 0, raw=True).float(), final_D, dim=0))
    passes = passes_selection(stats["group"], stats["strict_auroc"], min_auroc)
    return Retrained(step, str(cc_dir), latent, stats["group"], stats["strict_auroc"], stats["strict_d"],
                     stats["firing"]["call"], cos, passes)


def first_passing(rows: list[Retrained]) -> Optional[int]:
    return next((r.step for r in sorted(rows, key=lambda r: r.step) if r.passes), None)
