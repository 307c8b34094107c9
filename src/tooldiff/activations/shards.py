"""Writing a harvest: row buffers → safetensors shards, running stats, manifest updates.

A shard is flushed only between prompt batches, so every shard ends on a prompt boundary
and the manifest's `next_prompt` is always a safe resume point. Each shard carries its
harvest identity in the safetensors metadata, so a shard copied in from another harvest is
caught on load even if someone fixes up the checksum.

Full shards are serialized and hashed by a small pool of worker threads, so the models keep
computing meanwhile and a GPU harvest that keeps every position is not bound by one core
hashing gigabytes. What makes a shard part of the harvest is the manifest, and the manifest
is updated by the harvest's own thread, shard after shard in order: `next_prompt` is always a
safe resume point. At most `PENDING_SHARDS` shards wait (a bound on host memory). The running
stats are the caller's: it merges each batch where it was computed (the GPU, in a GPU
harvest), and a flush records a snapshot taken when the shard was queued.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

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


PENDING_SHARDS = 4
WRITERS = max(1, min(4, (os.cpu_count() or 1) - 1))  # threads serializing and hashing shards


@dataclass
class _Flush:
    """One queued flush: its shard (None when nothing was buffered), the stats then, and the prompts it closes."""

    shard: Optional[Future]
    stats: dict[str, torch.Tensor]
    stop_prompt: int


class ShardWriter:
    def __init__(self, directory: Path, manifest: Manifest, stats: Welford, store_dtype: torch.dtype):
        self.directory = Path(directory)
        self.manifest = manifest
        self.stats = stats
        self.store_dtype = store_dtype
        self._acts: list[torch.Tensor] = []
        self._rows: dict[str, list[torch.Tensor]] = {f: [] for f in ROW_FIELDS}
        self._first_prompt = manifest.next_prompt
        self._next_shard = len(manifest.shards)
        self._pool = ThreadPoolExecutor(WRITERS, thread_name_prefix="tooldiff-shard")
        self._pending: deque[_Flush] = deque()

    @property
    def buffered_rows(self) -> int:
        return sum(a.shape[0] for a in self._acts)

    def add(self, acts_NMD: torch.Tensor, **rows: torch.Tensor) -> None:
        """Buffer rows (host memory): activations (N, n_models, d) plus one value per ROW_FIELD.
        The caller has merged them into `stats` already."""
        self._acts.append(acts_NMD.to(self.store_dtype).contiguous())
        for f in ROW_FIELDS:
            self._rows[f].append(rows[f].to(ROW_DTYPES[f]))

    def end_batch(self, stop_prompt: int) -> None:
        """Prompts up to `stop_prompt` are buffered; queue a shard if it is full."""
        if self.buffered_rows >= self.manifest.shard_rows:
            self.flush(stop_prompt)
        self._commit(keep=PENDING_SHARDS)

    def flush(self, stop_prompt: int) -> None:
        """Queue what is buffered as a shard (if anything); the manifest follows in order."""
        shard = None
        if self._acts:
            name = f"shard-{self._next_shard:05d}.safetensors"
            self._next_shard += 1
            shard = self._pool.submit(self._write_shard, name, self._acts, self._rows, self._first_prompt, stop_prompt)
        self._pending.append(_Flush(shard, self.stats.state(), stop_prompt))
        self._acts, self._rows = [], {f: [] for f in ROW_FIELDS}
        self._first_prompt = stop_prompt

    def finish(self) -> None:
        self.flush(self.manifest.n_prompts)
        self.close()
        self.manifest.complete = True
        write_manifest(self.directory, self.manifest)

    def close(self) -> None:
        """Commit every queued shard (also when the harvest failed: rows already computed are
        kept), then stop the workers. A worker's error is raised here, in order."""
        try:
            self._commit(keep=0)
        finally:
            self._pool.shutdown(wait=True)

    def _commit(self, keep: int) -> None:
        """Record finished shards in the manifest, oldest first; wait while more than `keep` are queued."""
        while self._pending and (len(self._pending) > keep or _done(self._pending[0])):
            job = self._pending[0]
            if job.shard is not None:
                entry = job.shard.result()
                self.manifest.shards.append(entry)
                self.manifest.n_rows += entry.rows
            self.manifest.next_prompt = job.stop_prompt
            self._write_stats(job.stats)
            write_manifest(self.directory, self.manifest)
            self._pending.popleft()

    def _write_shard(self, name: str, acts: list[torch.Tensor], rows: dict[str, list[torch.Tensor]],
                     first_prompt: int, stop_prompt: int) -> ShardEntry:
        """(A worker thread.) One shard file, written atomically; its manifest entry."""
        tmp = self.directory / (name + ".tmp")
        digest = write_pieces(tmp, {"acts": acts, **rows}, shard_metadata(self.manifest))
        tmp.replace(self.directory / name)
        return ShardEntry(file=name, rows=sum(a.shape[0] for a in acts), sha256=digest,
                          first_prompt=first_prompt, stop_prompt=stop_prompt)

    def _write_stats(self, state: dict[str, torch.Tensor]) -> None:
        tmp = self.directory / (STATS_FILE + ".tmp")
        save_file(state, str(tmp), metadata={"harvest_id": self.manifest.harvest_id})
        tmp.replace(self.directory / STATS_FILE)
        self.manifest.stats_sha256 = sha256_file(self.directory / STATS_FILE)


SAFETENSORS_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
                      torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
                      torch.bool: "BOOL"}


def write_pieces(path: Path, pieces: dict[str, list[torch.Tensor]], metadata: dict[str, str]) -> str:
    """A safetensors file whose tensor `name` is its pieces concatenated along dim 0; returns its sha256.

    Written straight from the pieces' memory, hashed as it is written: no concatenated copy, no
    bytes copy and no second read to hash it, and file writes and hashing let go of the GIL, so
    the harvest's own thread keeps launching work meanwhile. The file is the standard format
    (8-byte header length, JSON header, data in header order), read by safetensors' loader."""
    header: dict[str, object] = {}
    at = 0
    for name, parts in pieces.items():
        nbytes = sum(p.numel() * p.element_size() for p in parts)
        header[name] = {"dtype": SAFETENSORS_DTYPES[parts[0].dtype],
                        "shape": [sum(p.shape[0] for p in parts), *parts[0].shape[1:]], "data_offsets": [at, at + nbytes]}
        at += nbytes
    header["__metadata__"] = metadata
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # the data starts 8-byte aligned, as safetensors writes it
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        for chunk in [struct.pack("<Q", len(blob)), blob]:
            fh.write(chunk)
            digest.update(chunk)
        for parts in pieces.values():
            for part in parts:
                view = memoryview(part.contiguous().reshape(-1).view(torch.uint8).numpy())
                fh.write(view)
                digest.update(view)
    return digest.hexdigest()


def _done(job: _Flush) -> bool:
    return job.shard is None or job.shard.done()


def load_stats(directory: Path) -> Welford:
    return Welford.from_state(load_file(str(Path(directory) / STATS_FILE)))
