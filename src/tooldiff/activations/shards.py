"""Writing a harvest: row buffers → safetensors shards, running stats, manifest updates.

A shard is flushed only between prompt batches, so every shard ends on a prompt boundary
and the manifest's `next_prompt` is always a safe resume point. Each shard carries its
harvest identity in the safetensors metadata, so a shard copied in from another harvest is
caught on load even if someone fixes up the checksum.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tooldiff.activations.manifest import (
    STATS_FILE, Manifest, ShardEntry, sha256_file, write_manifest,
)
from tooldiff.activations.welford import Welford

ROW_FIELDS = ("sample", "token", "decision", "label", "kind")
ROW_DTYPES = {"sample": torch.int64, "token": torch.int32, "decision": torch.uint8,
              "label": torch.uint8, "kind": torch.int16}


def shard_metadata(manifest: Manifest) -> dict[str, str]:
    return {"format": manifest.format, "harvest_id": manifest.harvest_id, "layer": str(manifest.layer),
            "models": json.dumps(manifest.models), "positions": manifest.positions,
            "d_model": str(manifest.d_model)}


class ShardWriter:
    def __init__(self, directory: Path, manifest: Manifest, stats: Welford, store_dtype: torch.dtype):
        self.directory = Path(directory)
        self.manifest = manifest
        self.stats = stats
        self.store_dtype = store_dtype
        self._acts: list[torch.Tensor] = []
        self._rows: dict[str, list[torch.Tensor]] = {f: [] for f in ROW_FIELDS}
        self._first_prompt = manifest.next_prompt

    @property
    def buffered_rows(self) -> int:
        return sum(a.shape[0] for a in self._acts)

    def add(self, acts_NMD: torch.Tensor, **rows: torch.Tensor) -> None:
        """Buffer rows: activations (N, n_models, d) plus one value per row for each ROW_FIELD."""
        acts = acts_NMD.to(self.store_dtype).contiguous()
        self.stats.update(acts)
        self._acts.append(acts)
        for f in ROW_FIELDS:
            self._rows[f].append(rows[f].to(ROW_DTYPES[f]))

    def end_batch(self, stop_prompt: int) -> None:
        """Prompts up to `stop_prompt` are buffered; write a shard if it is full."""
        if self.buffered_rows >= self.manifest.shard_rows:
            self.flush(stop_prompt)

    def flush(self, stop_prompt: int) -> None:
        if self._acts:
            self._write_shard(stop_prompt)
        self.manifest.next_prompt = stop_prompt
        self._write_stats()
        write_manifest(self.directory, self.manifest)
        self._first_prompt = stop_prompt

    def finish(self) -> None:
        self.flush(self.manifest.n_prompts)
        self.manifest.complete = True
        write_manifest(self.directory, self.manifest)

    def _write_shard(self, stop_prompt: int) -> None:
        name = f"shard-{len(self.manifest.shards):05d}.safetensors"
        tensors = {"acts": torch.cat(self._acts)}
        tensors.update({f: torch.cat(v) for f, v in self._rows.items()})
        tmp = self.directory / (name + ".tmp")
        save_file(tensors, str(tmp), metadata=shard_metadata(self.manifest))
        tmp.replace(self.directory / name)
        rows = tensors["acts"].shape[0]
        self.manifest.shards.append(ShardEntry(file=name, rows=rows, sha256=sha256_file(self.directory / name),
                                               first_prompt=self._first_prompt, stop_prompt=stop_prompt))
        self.manifest.n_rows += rows
        self._acts = []
        self._rows = {f: [] for f in ROW_FIELDS}

    def _write_stats(self) -> None:
        tmp = self.directory / (STATS_FILE + ".tmp")
        save_file(self.stats.state(), str(tmp), metadata={"harvest_id": self.manifest.harvest_id})
        tmp.replace(self.directory / STATS_FILE)
        self.manifest.stats_sha256 = sha256_file(self.directory / STATS_FILE)


def load_stats(directory: Path) -> Welford:
    return Welford.from_state(load_file(str(Path(directory) / STATS_FILE)))
