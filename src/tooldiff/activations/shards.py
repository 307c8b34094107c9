"""Writing a harvest: row buffers → safetensors shards, running stats, manifest updates.

A shard is flushed only between prompt batches, so every shard ends on a prompt boundary
and the manifest's `next_prompt` is always a safe resume point. Each shard carries its
harvest identity in the safetensors metadata, so a shard copied in from another harvest is
caught on load even if someone fixes up the checksum.

Full shards are serialized, hashed and renamed into place by one background thread, in
order, so the models keep computing meanwhile (at most `PENDING_SHARDS` wait, which bounds
host memory). The running stats are the caller's: it merges each batch where it was computed
(the GPU, in a GPU harvest), and a flush writes a snapshot taken when the shard was queued.
"""

from __future__ import annotations

import json
import queue
import threading
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


PENDING_SHARDS = 2


@dataclass
class _Flush:
    """One queued flush: the buffered rows (maybe none), the stats then, and the prompt range."""

    acts: list[torch.Tensor]
    rows: dict[str, list[torch.Tensor]]
    stats: dict[str, torch.Tensor]
    first_prompt: int
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
        self._jobs: queue.Queue[Optional[_Flush]] = queue.Queue(maxsize=PENDING_SHARDS)
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._work, name="tooldiff-shard-writer", daemon=True)
        self._thread.start()

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
        self._raise_if_failed()
        if self.buffered_rows >= self.manifest.shard_rows:
            self.flush(stop_prompt)

    def flush(self, stop_prompt: int) -> None:
        """Queue what is buffered as a shard (if anything), then the stats and the manifest."""
        job = _Flush(self._acts, self._rows, self.stats.state(), self._first_prompt, stop_prompt)
        self._acts, self._rows = [], {f: [] for f in ROW_FIELDS}
        self._first_prompt = stop_prompt
        self._jobs.put(job)

    def finish(self) -> None:
        self.flush(self.manifest.n_prompts)
        self.close()
        self.manifest.complete = True
        write_manifest(self.directory, self.manifest)

    def close(self) -> None:
        """Wait until every queued shard is on disk (also when the harvest failed: rows already
        computed are kept); then re-raise the writer's own error, if it had one."""
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            if self._error is not None:
                continue  # after a failure nothing more is written: the manifest stays a resume point
            try:
                self._write(job)
            except BaseException as e:  # noqa: BLE001 - handed to the harvest's thread
                self._error = e

    def _write(self, job: _Flush) -> None:
        if job.acts:
            self._write_shard(job)
        self.manifest.next_prompt = job.stop_prompt
        self._write_stats(job.stats)
        write_manifest(self.directory, self.manifest)

    def _write_shard(self, job: _Flush) -> None:
        name = f"shard-{len(self.manifest.shards):05d}.safetensors"
        tensors = {"acts": torch.cat(job.acts)}
        tensors.update({f: torch.cat(v) for f, v in job.rows.items()})
        tmp = self.directory / (name + ".tmp")
        save_file(tensors, str(tmp), metadata=shard_metadata(self.manifest))
        tmp.replace(self.directory / name)
        rows = tensors["acts"].shape[0]
        self.manifest.shards.append(ShardEntry(file=name, rows=rows, sha256=sha256_file(self.directory / name),
                                               first_prompt=job.first_prompt, stop_prompt=job.stop_prompt))
        self.manifest.n_rows += rows

    def _write_stats(self, state: dict[str, torch.Tensor]) -> None:
        tmp = self.directory / (STATS_FILE + ".tmp")
        save_file(state, str(tmp), metadata={"harvest_id": self.manifest.harvest_id})
        tmp.replace(self.directory / STATS_FILE)
        self.manifest.stats_sha256 = sha256_file(self.directory / STATS_FILE)


def load_stats(directory: Path) -> Welford:
    return Welford.from_state(load_file(str(Path(directory) / STATS_FILE)))
