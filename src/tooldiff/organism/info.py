"""organism.json, read as a typed artifact: what a built organism is and where its parts are.

build.py writes the file (format 1) through `OrganismInfo.new(...)` and `artifacts.write_artifact`;
`read_info` is its one reader, so that `load_organism`, the report and the README read attributes,
and an old, foreign or half-written file is one UserError line naming the file (not a KeyError
later). Reader and writer share this model; it is part of the recipe fingerprint (a build writes it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Optional

from tooldiff.artifacts import Artifact, Num, Record, read_json

INFO_FILE = "organism.json"


class OrganismPaths(Record):
    """Where the parts are, relative to the organism directory."""

    base: str
    rl: str
    tokenizer: Optional[str] = None
    data: dict[str, str]  # split -> JSONL file
    eval: Optional[str] = None


class LayerChoice(Record):
    recommended: int
    rule: Optional[str] = None


class Planted(Record):
    """A rank1 organism's planted change: its layer and the file holding the direction."""

    layer: int
    file: str
    update_norm: Optional[Num] = None


class OrganismInfo(Artifact):
    WHAT: ClassVar[str] = "organism description (organism.json)"
    RERUN: ClassVar[str] = "rebuild it with `tooldiff organism --out DIR` (or reinstall the shipped pair)"

    preset: str
    seed: int
    variant: str
    config_hash: str
    config: dict[str, Any]
    recipe: dict[str, Any] = {}
    built_at: Optional[str] = None
    torch_threads: dict[str, int] = {}
    versions: dict[str, str] = {}
    build_seconds: dict[str, Num] = {}
    paths: OrganismPaths
    data: dict[str, Any] = {}  # split sizes, and the data stage's own record
    model: dict[str, Any] = {}
    rl_training: dict[str, Any] = {}
    metrics: dict[str, Any] = {}  # {"split", "base", "rl"}: the organism's metrics on its test split
    layer: LayerChoice
    planted: Optional[Planted] = None


def read_info(directory: Path) -> tuple[OrganismInfo, dict]:
    """organism.json of the organism in `directory`, typed and as written (the dict keeps the
    file's key order, for the results that quote it); missing, old or foreign is one UserError line."""
    path = Path(directory) / INFO_FILE
    raw = read_json(path, OrganismInfo.WHAT)
    return OrganismInfo.from_dict(raw, str(path)), raw
