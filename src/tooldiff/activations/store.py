"""Reading a harvest: verify every shard, then hold the rows in memory for training.

Each check fails with a one-line UserError that names the shard: missing file, checksum
mismatch (corruption), a shard from another harvest (layer or models differ), wrong shape,
NaN/inf values. Rows are kept in the stored dtype and converted per batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from tooldiff.activations.manifest import STATS_FILE, Manifest, read_manifest, sha256_file
from tooldiff.activations.shards import ROW_DTYPES, ROW_FIELDS
from tooldiff.activations.welford import Welford
from tooldiff.errors import UserError
from tooldiff.hf import parse_dtype


@dataclass
class ActivationStore:
    directory: Path
    manifest: Manifest
    acts_NMD: torch.Tensor  # stored dtype; model 0 = A (rl), 1 = B (base)
    rows: dict[str, torch.Tensor]  # per-row metadata: sample, token, decision, label, kind
    mean_MD: torch.Tensor  # float64, from the harvest's Welford pass
    var_MD: torch.Tensor

    @property
    def n_rows(self) -> int:
        return self.acts_NMD.shape[0]

    @property
    def n_models(self) -> int:
        return self.acts_NMD.shape[1]

    @property
    def d_model(self) -> int:
        return self.acts_NMD.shape[2]

    @property
    def data_hash(self) -> str:
        return self.manifest.data_hash()

    def rows_float(self, index: torch.Tensor) -> torch.Tensor:
        return self.acts_NMD[index].to(torch.float32)

    def to(self, device: torch.device) -> "ActivationStore":
        """The same store with its activations in `device` memory (the per-row fields stay)."""
        return replace(self, acts_NMD=self.acts_NMD.to(device))


def _shard_label(directory: Path, name: str) -> str:
    return f"shard {directory / name}"


def _check_shard_identity(meta: dict[str, str], manifest: Manifest, label: str) -> None:
    if meta.get("layer") != str(manifest.layer):
        raise UserError(f"{label} holds layer {meta.get('layer')} activations but the harvest is layer "
                        f"{manifest.layer}: shards from different harvests are mixed")
    if meta.get("models") != json.dumps(manifest.models):
        raise UserError(f"{label} comes from models {meta.get('models')} but the harvest is of {manifest.models}: "
                        "shards from different harvests are mixed")
    if meta.get("harvest_id") != manifest.harvest_id:
        raise UserError(f"{label} belongs to harvest {meta.get('harvest_id')}, not {manifest.harvest_id} "
                        "(different data, positions or tokenizer): shards from different harvests are mixed")


def _read_shard(directory: Path, name: str, manifest: Manifest, expected_rows: int) -> dict[str, torch.Tensor]:
    label = _shard_label(directory, name)
    path = directory / name
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise UserError(f"{label} is unreadable: {str(e).splitlines()[0]}") from None
    _check_shard_identity(meta, manifest, label)
    acts = tensors.get("acts")
    want = (expected_rows, 2, manifest.d_model)
    if acts is None or tuple(acts.shape) != want:
        raise UserError(f"{label}: 'acts' has shape {None if acts is None else tuple(acts.shape)}, expected {want}")
    missing = [f for f in ROW_FIELDS if f not in tensors]
    if missing:
        raise UserError(f"{label}: missing per-row fields {missing}")
    bad = ~torch.isfinite(acts).flatten(1).all(1)
    if bad.any():
        row = int(bad.nonzero()[0])
        raise UserError(f"{label}: row {row} holds NaN or inf activations ({int(bad.sum())} bad rows)")
    return tensors


def _verify_checksum(directory: Path, name: str, expected: str) -> None:
    path = directory / name
    if not path.is_file():
        raise UserError(f"{_shard_label(directory, name)} is missing")
    if sha256_file(path) != expected:
        raise UserError(f"{_shard_label(directory, name)} is corrupt: its sha256 does not match the manifest")


def load_activations(directory: str | Path, verify: bool = True) -> ActivationStore:
    """Load a complete harvest; `verify` checks every shard's sha256 against the manifest."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    if not manifest.complete:
        raise UserError(f"harvest {directory} is incomplete ({manifest.next_prompt}/{manifest.n_prompts} prompts); "
                        "rerun the same harvest command to finish it")
    if not manifest.shards:
        raise UserError(f"harvest {directory} holds no rows")
    if sum(s.rows for s in manifest.shards) != manifest.n_rows:
        raise UserError(f"{directory}/manifest.json: field 'n_rows' ({manifest.n_rows}) disagrees with its shards")
    acts = torch.empty((manifest.n_rows, 2, manifest.d_model), dtype=parse_dtype(manifest.dtype))
    rows = {f: torch.empty(manifest.n_rows, dtype=ROW_DTYPES[f]) for f in ROW_FIELDS}
    at = 0
    for shard in manifest.shards:
        if verify:
            _verify_checksum(directory, shard.file, shard.sha256)
        tensors = _read_shard(directory, shard.file, manifest, shard.rows)
        if tensors["acts"].dtype != acts.dtype:
            raise UserError(f"{_shard_label(directory, shard.file)} is stored as {tensors['acts'].dtype}, "
                            f"the others as {acts.dtype}")
        acts[at : at + shard.rows] = tensors["acts"]
        for f in ROW_FIELDS:
            rows[f][at : at + shard.rows] = tensors[f]
        at += shard.rows
    mean, var = _read_stats(directory, manifest, verify)
    return ActivationStore(directory, manifest, acts, rows, mean, var)


def _read_stats(directory: Path, manifest: Manifest, verify: bool) -> tuple[torch.Tensor, torch.Tensor]:
    path = directory / STATS_FILE
    if not path.is_file():
        raise UserError(f"harvest {directory}: {STATS_FILE} is missing")
    if verify and manifest.stats_sha256 and sha256_file(path) != manifest.stats_sha256:
        raise UserError(f"{path} is corrupt: its sha256 does not match the manifest")
    stats = Welford.from_state(load_file(str(path)))
    if stats.count != manifest.n_rows:
        raise UserError(f"{path} covers {stats.count} rows but the shards hold {manifest.n_rows}")
    return stats.mean_MD, stats.var_MD


def stats_from_shards(directory: Path, manifest: Manifest) -> Welford:
    """Recompute the running stats from the shards already written (used when resuming)."""
    stats = Welford(2, manifest.d_model)
    for shard in manifest.shards:
        _verify_checksum(directory, shard.file, shard.sha256)
        stats.update(_read_shard(directory, shard.file, manifest, shard.rows)["acts"])
    return stats
