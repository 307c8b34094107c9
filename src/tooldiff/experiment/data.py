"""The experiment's inputs: the stratified test sample, calibration activations."""

from __future__ import annotations

import random
from pathlib import Path

import torch

from tooldiff.errors import UserError
from tooldiff.features import CalibrationActs
from tooldiff.prompts import REQUEST_KINDS

CALIBRATION_FILE = "calibration.jsonl"  # the calibration prompts, as harvested, in the experiment directory


def stratified_sample(records: list[dict], n_per_kind: int, seed: int, source: Path) -> list[dict]:
    """Up to n_per_kind prompts of each request kind, in a seeded order; empty kinds are errors."""
    rng = random.Random(seed)
    out = []
    for kind in REQUEST_KINDS:
        pool = [r for r in records if r.get("kind") == kind]
        if not pool:
            raise UserError(f"{source} has no {kind!r} prompts: the split is empty or not an organism split")
        out += rng.sample(pool, min(n_per_kind, len(pool)))
    return out


def calibration_acts(acts_dir: Path, records_file: Path) -> CalibrationActs:
    """Decision-position rows of a harvest, with ids, kinds and the prompt text as context."""
    from tooldiff.activations import load_activations
    from tooldiff.activations.records import read_records

    store = load_activations(acts_dir)
    samples = read_records(acts_dir / "samples.jsonl")
    by_index = {s["sample"]: s for s in samples}
    records = read_records(records_file)
    sample_N = store.rows["sample"].tolist()
    context = [records[i].get("text") or records[i]["messages"][-1]["content"] for i in sample_N]
    return CalibrationActs(x_NMD=store.acts_NMD.to(torch.float32),
                           kinds=[by_index[i]["kind"] for i in sample_N],
                           ids=[by_index[i]["id"] for i in sample_N], contexts=context)
