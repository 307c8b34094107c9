"""The model pair every study runs on: one typed value from harvest to report.

A pair is two model directories (base and its RL twin), the tokenizer to render prompts with, the
layer to read, the prompt splits (train: crosscoder activations; calibration: feature ranking;
test: the experiment) and, for a positive control, the direction that was planted. The embedded
organism makes one with `Organism.as_pair()`, a study TOML with `study.run.study_pair`; the
pipeline (tooldiff.pipeline) and the experiment take nothing else, so no stage needs to know
which of the two it runs on.

This module sits below every stage (like hf.py and prompts.py): the organism builds pairs and the
experiment consumes them, and neither may import the other's side.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from tooldiff.errors import UserError, iter_jsonl

SPLITS = ("train", "calibration", "test")
HELD_OUT = ("calibration", "test")  # a row whose "split" names one of these belongs to it only


@dataclass(frozen=True, eq=False)
class ModelPair:
    """Where the two models, their tokenizer and the prompt splits are, and which layer to study.

    `splits` maps each of SPLITS to its JSONL files, read in order. A row carrying a `"split"`
    field that names another held-out split is skipped (the organism's generic text lists its
    calibration and test rows in one file), so that selection and evaluation prompts never
    leak into training. `planted_D` is the planted direction of a positive-control pair."""

    name: str
    base: Path
    rl: Path
    tokenizer: Path
    layer: int
    splits: Mapping[str, tuple[Path, ...]]
    planted_D: Optional[Any] = None  # torch.Tensor [D]; Any keeps this module free of torch
    info: Optional[dict] = field(default=None, repr=False)  # organism.json of an organism's pair

    def __post_init__(self) -> None:
        missing = [s for s in SPLITS if not self.splits.get(s)]
        if missing:
            raise UserError(f"model pair {self.name!r} has no {', '.join(missing)} prompts")

    def source(self, split: str) -> Path:
        """The first file of a split: what error messages about it name."""
        return self.splits[split][0]

    def records(self, split: str) -> list[dict]:
        """The prompt records of `split` (one of SPLITS), from all its files."""
        if split not in SPLITS:
            raise UserError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        others = set(HELD_OUT) - {split}
        return [r for path in self.splits[split] for _, r in iter_jsonl(path, f"{split} prompts")
                if r.get("split") not in others]

    def split_file(self, split: str, out: Path) -> Path:
        """One JSONL file with the records of `split`: its own file when that holds exactly them,
        else `out`, written."""
        rows = self.records(split)
        if len(self.splits[split]) == 1 and _count_rows(self.source(split)) == len(rows):
            return self.source(split)
        return write_records(rows, out)

    def load_models(self, device: str = "cpu") -> tuple[Any, Any, Any]:
        """(tokenizer, base, rl), the models in eval mode on `device`."""
        from tooldiff.hf import load_model, load_tokenizer

        return load_tokenizer(self.tokenizer), load_model(self.base, device=device), load_model(self.rl, device=device)


def _count_rows(path: Path) -> int:
    return sum(1 for _ in iter_jsonl(path))


def write_records(rows: list[dict], out: Path) -> Path:
    """`rows` as JSONL at `out` (written under a temporary name, then renamed)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(out)
    return out
