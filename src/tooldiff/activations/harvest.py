"""Paired harvest: run both models on the same tokens and keep layer-L outputs side by side.

- A forward hook on decoder layer L reads its output (tensor in transformers 5, tuple
  before) and then stops the forward pass: layers above L are never computed.
- Prompts are sorted by length (stable) so batches carry little padding. Padding is on the
  right: with causal attention a real token never sees the pads after it, so its
  activations equal those of the unpadded prompt.
- Positions: `decision` = the last prompt token; `prompt` = every prompt token; `all` = the
  same as `prompt`, because prompt records have no completions.
- Model order in every row: index 0 = A = the RL model, index 1 = B = the base.
- On a GPU, a batch's activations stay on the device for the finite check and the running
  stats, then travel to host memory on a side stream while the next batch computes (`HostCopy`);
  shards are written by a background thread (shards.py). Only the copy of the PREVIOUS batch is
  waited for, so the device is never idle waiting for the host. On the CPU the same loop runs
  step by step.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import nn

from tooldiff import hf
from tooldiff.activations.manifest import (
    SAMPLES_FILE, Manifest, harvest_identity, read_manifest, sha256_file, write_manifest,
)
from tooldiff.activations.records import Prompt, read_records, tokenize_records
from tooldiff.activations.shards import ShardWriter
from tooldiff.activations.store import stats_from_shards
from tooldiff.activations.welford import Welford
from tooldiff.errors import UserError
from tooldiff.progress import new_progress

POSITIONS = ("decision", "prompt", "all")


@torch.inference_mode()
def layer_output(model: nn.Module, layer: int, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Hidden state (B, T, d) at the output of decoder layer `layer`, stopping right after it."""
    with hf.capture_layers(model, [layer], stop=True) as box:
        try:
            model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        except hf.StopForward:
            pass
    if layer not in box:
        raise RuntimeError(f"decoder layer {layer} never ran")
    return box[layer]


def pad_right(prompts: list[Prompt], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return pad_token_ids([p.token_ids for p in prompts], pad_id, device)


def pad_token_ids(token_ids: Sequence[Sequence[int]], pad_id: int,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ids_BT, mask_BT) on `device` and the lengths, right-padded: the one way prompts are
    batched for a layer read (a causal model's real tokens never see the pads after them)."""
    lengths = torch.tensor([len(ids) for ids in token_ids])
    ids = torch.full((len(token_ids), int(lengths.max())), pad_id, dtype=torch.long)
    for i, row in enumerate(token_ids):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    mask = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).long()
    return ids.to(device), mask.to(device), lengths


@torch.no_grad()
def last_token_outputs(model: nn.Module, layer: int, token_ids: Sequence[Sequence[int]], pad_id: int,
                       batch_size: int = 64) -> torch.Tensor:
    """h_ND, float32 on the CPU: decoder layer `layer`'s output at each prompt's last token (the
    harvest's `decision` position), `batch_size` prompts per forward pass."""
    device = next(model.parameters()).device
    rows = []
    for start in range(0, len(token_ids), batch_size):
        ids, mask, lengths = pad_token_ids(token_ids[start:start + batch_size], pad_id, device)
        row_N, token_N = select_rows(lengths, "decision")
        rows.append(layer_output(model, layer, ids, mask)[row_N.to(device), token_N.to(device)].float().cpu())
    return torch.cat(rows)


def select_rows(lengths: torch.Tensor, positions: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch row, token index) of every harvested position."""
    if positions == "decision":
        return torch.arange(len(lengths)), lengths - 1
    rows = torch.repeat_interleave(torch.arange(len(lengths)), lengths)
    starts = torch.repeat_interleave(torch.cumsum(lengths, 0) - lengths, lengths)
    return rows, torch.arange(int(lengths.sum())) - starts


def _vocab_hash(tokenizer) -> str:
    return hashlib.sha256(json.dumps(sorted(tokenizer.get_vocab().items())).encode()).hexdigest()[:16]


def _check_args(positions: str, batch_size: int, shard_rows: int) -> None:
    if positions not in POSITIONS:
        raise UserError(f"--positions must be one of {'|'.join(POSITIONS)}, got {positions!r}")
    if batch_size < 1:
        raise UserError(f"--batch-size must be positive, got {batch_size}")
    if shard_rows < 1:
        raise UserError(f"--shard-rows must be positive, got {shard_rows}")


def _open_output(out: Path, fresh: Manifest) -> Manifest:
    """A new manifest, or the one of an interrupted identical harvest to resume."""
    if (out / "manifest.json").is_file():
        old = read_manifest(out)
        same = (old.harvest_id, old.shard_rows, old.model_dtype) == (fresh.harvest_id, fresh.shard_rows, fresh.model_dtype)
        if not same:
            raise UserError(f"{out} holds a different harvest (models, layer, positions, data or options); "
                            "choose another --out")
        return old
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} exists, is not empty and holds no harvest manifest; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(out, fresh)
    return fresh


def _write_samples(out: Path, prompts: list[Prompt]) -> None:
    with open(out / SAMPLES_FILE, "w") as fh:
        for p in prompts:
            fh.write(json.dumps({"sample": p.index, "id": p.id, "kind": p.kind, "label": p.label,
                                 "n_tokens": len(p.token_ids)}) + "\n")


@dataclass
class _Batch:
    """One batch of prompts on its way to the shards: its rows (host memory once `ready` has
    fired), whether they are all finite, and the per-row fields."""

    prompts: list[Prompt]
    stop_prompt: int
    acts_NMD: torch.Tensor
    finite: torch.Tensor
    meta: dict[str, torch.Tensor]
    ready: Optional[torch.cuda.Event] = None

    def collect(self) -> "_Batch":
        if self.ready is not None:
            self.ready.synchronize()
        return self


class HostCopy:
    """Device-to-host copies on a side stream, into pinned memory: a batch's rows travel while
    the next batch computes. On the CPU there is nothing to copy."""

    def __init__(self, device: torch.device):
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None

    def send(self, batch: _Batch) -> _Batch:
        if self.stream is None:
            return batch
        computed = torch.cuda.Event()
        computed.record()
        self.stream.wait_event(computed)
        with torch.cuda.stream(self.stream):
            acts = torch.empty(batch.acts_NMD.shape, dtype=batch.acts_NMD.dtype, pin_memory=True)
            acts.copy_(batch.acts_NMD, non_blocking=True)
            finite = torch.empty((), dtype=torch.bool, pin_memory=True)
            finite.copy_(batch.finite, non_blocking=True)
            batch.acts_NMD.record_stream(self.stream)  # not reused before the copy has read it
            ready = torch.cuda.Event()
            ready.record(self.stream)
        return _Batch(batch.prompts, batch.stop_prompt, acts, finite, batch.meta, ready)


def _harvest_batch(models: list[nn.Module], layer: int, batch: list[Prompt], positions: str, pad_id: int,
                   device: torch.device, kind_code: dict[str, int], store_dtype: torch.dtype) -> _Batch:
    """Both models' layer outputs at the selected positions, in the stored dtype, on `device`."""
    ids, mask, lengths = pad_right(batch, pad_id, device)
    rows, tokens = select_rows(lengths, positions)
    rows_dev, tokens_dev = rows.to(device), tokens.to(device)
    acts = [layer_output(m, layer, ids, mask)[rows_dev, tokens_dev].float() for m in models]
    acts_NMD = torch.stack(acts, dim=1).to(store_dtype)
    per_prompt = {"sample": torch.tensor([p.index for p in batch]), "label": torch.tensor([p.label for p in batch]),
                  "kind": torch.tensor([kind_code[p.kind] for p in batch])}
    meta = {f: v[rows] for f, v in per_prompt.items()}
    meta.update(token=tokens, decision=tokens == lengths[rows] - 1)
    return _Batch(batch, 0, acts_NMD, torch.isfinite(acts_NMD).all(), meta)


def _store(batch: _Batch, writer: ShardWriter, dtype: str) -> None:
    """Hand a batch's rows (already merged into the stats) to the shard writer."""
    batch.collect()
    if not bool(batch.finite):
        ids = [p.id for p in batch.prompts][:3]
        raise UserError(f"non-finite activations (NaN/inf in {dtype}) in the batch of records {ids}; "
                        "try --model-dtype float32 or --dtype float32")
    writer.add(batch.acts_NMD, **batch.meta)
    writer.end_batch(batch.stop_prompt)


@dataclass(frozen=True)
class HarvestSettings:
    """How to harvest: where (layer, positions) and how (batching, dtypes, device)."""

    layer: int
    positions: str = "decision"
    batch_size: int = 32
    shard_rows: int = 65536
    dtype: str = "float32"  # stored activations
    device: str = "cpu"
    model_dtype: str = "float32"  # model compute


def harvest_pair(*, base: str, rl: str, layer: int, data: Path, out: Path, positions: str = "decision",
                 batch_size: int = 32, shard_rows: int = 65536, dtype: str = "float32", device: str = "cpu",
                 model_dtype: str = "float32") -> Manifest:
    """Harvest layer-`layer` activations of (rl, base) on `data` into `out`; resumes if interrupted."""
    settings = HarvestSettings(layer, positions, batch_size, shard_rows, dtype, device, model_dtype)
    _check_args(positions, batch_size, shard_rows)
    hf.parse_dtype(dtype)
    records = read_records(Path(data))
    tok_a, tok_b = hf.load_tokenizer(rl), hf.load_tokenizer(base)
    hf.check_pair_configs(rl, base, tok_a, tok_b, layer)
    model_a = hf.load_model(rl, device=device, dtype=model_dtype)
    model_b = hf.load_model(base, device=device, dtype=model_dtype)
    hf.check_pair(model_a, model_b, tok_a, tok_b)
    return harvest_models((model_a, model_b), tok_a, (str(rl), str(base)), records, Path(data), Path(out), settings)


def harvest_models(models: tuple[nn.Module, nn.Module], tokenizer, names: tuple[str, str], records: list[dict],
                   data: Path, out: Path, settings: HarvestSettings) -> Manifest:
    """The harvest of two loaded, checked models (rl, base) that read `tokenizer`'s tokens."""
    s = settings
    hf.check_layer(models[0], s.layer)
    prompts = sorted(tokenize_records(records, tokenizer, data), key=lambda p: len(p.token_ids))
    fresh = _new_manifest(models[0], tokenizer, list(names), s.layer, s.positions, data, prompts, s.shard_rows,
                          s.dtype, s.model_dtype)
    manifest = _open_output(out, fresh)
    if manifest.complete:
        return manifest
    _write_samples(out, prompts)
    device, store_dtype = hf.resolve_device(s.device), hf.parse_dtype(s.dtype)
    stats = stats_from_shards(out, manifest) if manifest.shards else Welford(2, manifest.d_model)
    stats = Welford.from_state(stats.state(), device)  # merged where the rows are computed
    writer = ShardWriter(out, manifest, stats, store_dtype)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    kind_code = {k: i for i, k in enumerate(manifest.kinds)}
    copy = HostCopy(device)
    try:
        with new_progress() as progress:
            task = progress.add_task("harvest", total=len(prompts), completed=manifest.next_prompt)
            in_flight: Optional[_Batch] = None
            for start in range(manifest.next_prompt, len(prompts), s.batch_size):
                batch = _harvest_batch(list(models), s.layer, prompts[start : start + s.batch_size], s.positions,
                                       pad_id, device, kind_code, store_dtype)
                batch.stop_prompt = start + len(batch.prompts)
                if in_flight is not None:  # the previous batch's copy ran while this one computed
                    _store(in_flight, writer, s.dtype)
                    progress.update(task, advance=len(in_flight.prompts))
                stats.update(batch.acts_NMD)  # after the previous batch: a flush snapshots the stats
                in_flight = copy.send(batch)
            if in_flight is not None:
                _store(in_flight, writer, s.dtype)
                progress.update(task, advance=len(in_flight.prompts))
        writer.finish()
    finally:
        writer.close()  # rows already handed over reach the disk, also when the harvest failed
    return manifest


def _new_manifest(model: nn.Module, tokenizer, models: list[str], layer: int, positions: str, data: Path,
                  prompts: list[Prompt], shard_rows: int, dtype: str, model_dtype: str) -> Manifest:
    data_sha = sha256_file(data)
    return Manifest(
        harvest_id=harvest_identity(models, layer, positions, data_sha, _vocab_hash(tokenizer), dtype),
        models=models, layer=layer, positions=positions, d_model=hf.hidden_size(model), n_layers=hf.n_layers(model),
        dtype=dtype, model_dtype=model_dtype, data_file=str(data), data_sha256=data_sha, n_prompts=len(prompts),
        shard_rows=shard_rows, kinds=sorted({p.kind for p in prompts}),
    )
