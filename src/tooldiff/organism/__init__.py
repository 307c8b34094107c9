"""The embedded model organism: a tiny base LM and its GRPO-tuned twin, built offline on CPU.

    build_organism(out, preset="default", seed=0, variant="full", force=False) -> Path
    load_organism(dir, models=True) -> Organism
    load_organism(dir, models=False).as_pair() -> tooldiff.pair.ModelPair

See docs/organism.md for the tool world, the design choices and the measured numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from tooldiff.errors import UserError
from tooldiff.organism.build import build_organism
from tooldiff.organism.config import PRESETS, VARIANTS, get_preset
from tooldiff.organism.info import INFO_FILE, OrganismInfo, read_info

__all__ = ["INFO_FILE", "PRESETS", "VARIANTS", "Organism", "OrganismInfo", "build_organism", "get_preset", "load_organism"]


@dataclass
class Organism:
    """A built organism: where everything is, what organism.json says (`meta`, typed; `info`, the
    dict as written), and (optionally) the models."""

    root: Path
    info: dict
    base_path: Path
    rl_path: Path
    data: dict[str, Path]
    layer: int
    planted_path: Path | None = None
    tokenizer: Any = None
    base: Any = None
    rl: Any = None
    meta: Optional[OrganismInfo] = None

    def records(self, split: str) -> list[dict]:
        """Prompt records of a split (pretrain | rl | calibration | test | generic)."""
        from tooldiff.organism.store import read_jsonl

        if split not in self.data:
            raise UserError(f"unknown split {split!r}; choose one of {', '.join(self.data)}")
        return read_jsonl(self.data[split])

    def planted(self):
        """(tensors {"direction_D", "gate_I"}, layer) of a rank1 organism."""
        from tooldiff.organism.rank1 import load_planted

        if self.planted_path is None:
            raise UserError(f"{self.root} is a {self.meta.variant if self.meta else '?'!r} organism: no planted direction")
        return load_planted(self.planted_path)

    def as_pair(self):
        """The organism as the model pair every study runs on (tooldiff.pair.ModelPair): train on
        the pretrain and RL prompts, rank on the calibration prompts, test on the test prompts;
        generic text joins the split its rows name. A rank1 organism's pair carries its planted
        direction (the positive control's known answer)."""
        from tooldiff.pair import ModelPair

        generic = (self.data["generic"],) if "generic" in self.data else ()
        splits = {"train": (self.data["rl"], self.data["pretrain"], *generic),
                  "calibration": (self.data["calibration"], *generic), "test": (self.data["test"],)}
        planted_D = self.planted()[0]["direction_D"] if self.planted_path is not None else None
        return ModelPair(name=f"organism {self.root}", base=self.base_path, rl=self.rl_path, tokenizer=self.rl_path,
                         layer=self.layer, splits=splits, planted_D=planted_D, info=self.info)


def load_organism(directory: str | Path, models: bool = True, device: str = "cpu") -> Organism:
    """Open a built organism; with `models`, also load the tokenizer and both models (eval mode)."""
    root = Path(directory)
    if not (root / INFO_FILE).is_file():
        raise UserError(f"{root} holds no built organism ({INFO_FILE} missing); run `tooldiff organism --out DIR` first")
    meta, info = read_info(root)
    paths = meta.paths
    org = Organism(
        root=root,
        info=info,
        base_path=root / paths.base,
        rl_path=root / paths.rl,
        data={name: root / rel for name, rel in paths.data.items()},
        layer=meta.layer.recommended,
        planted_path=root / meta.planted.file if meta.planted else None,
        meta=meta,
    )
    if models:
        from tooldiff.hf import load_model, load_tokenizer

        org.tokenizer = load_tokenizer(org.rl_path)
        org.base = load_model(org.base_path, device=device)
        org.rl = load_model(org.rl_path, device=device)
    return org
