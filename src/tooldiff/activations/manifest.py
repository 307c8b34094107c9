"""The harvest manifest: what was harvested, from which pair, and a checksum per shard.

Everything a reader needs to trust a harvest directory lives here; it is rewritten
atomically after every shard so that a killed harvest resumes from the last whole shard.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict, ValidationError

from tooldiff.errors import UserError, describe_validation

MANIFEST_FILE = "manifest.json"
STATS_FILE = "stats.safetensors"
SAMPLES_FILE = "samples.jsonl"
FORMAT = "tooldiff-activations/1"


class ShardEntry(BaseModel):
    file: str
    rows: int
    sha256: str
    first_prompt: int  # in harvest (length-sorted) order
    stop_prompt: int


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: str = FORMAT
    harvest_id: str  # identity: models, layer, positions, data, tokenizer
    models: list[str]  # [A = rl, B = base]
    layer: int
    positions: str
    d_model: int
    n_layers: int
    dtype: str
    model_dtype: str
    data_file: str
    data_sha256: str
    n_prompts: int
    shard_rows: int
    kinds: list[str]
    shards: list[ShardEntry] = []
    next_prompt: int = 0
    complete: bool = False
    stats_sha256: Optional[str] = None
    n_rows: int = 0

    def data_hash(self) -> str:
        """What a crosscoder trained on this harvest records as its training data."""
        h = hashlib.sha256(self.harvest_id.encode())
        for s in self.shards:
            h.update(s.sha256.encode())
        return h.hexdigest()[:16]


def harvest_identity(models: list[str], layer: int, positions: str, data_sha256: str, vocab_hash: str,
                     dtype: str) -> str:
    blob = json.dumps([models, layer, positions, data_sha256, vocab_hash, dtype])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(directory: Path, manifest: Manifest) -> None:
    tmp = directory / (MANIFEST_FILE + ".tmp")
    tmp.write_text(manifest.model_dump_json(indent=2))
    tmp.replace(directory / MANIFEST_FILE)


def read_manifest(directory: Path) -> Manifest:
    path = Path(directory) / MANIFEST_FILE
    if not path.is_file():
        raise UserError(f"{directory} is not a harvest directory: {MANIFEST_FILE} is missing")
    try:
        return Manifest.model_validate_json(path.read_text())
    except ValidationError as e:
        raise UserError(f"{path}: invalid manifest: {describe_validation(e)}") from None
