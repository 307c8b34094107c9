"""Synthetic harvests: planted sparse features written in the real on-disk format.

For tests and benchmarks that need activations without running language models. Rows are
sparse non-negative mixtures of ground-truth feature directions; some features are shared
(the same coefficient writes into both models, through different directions), some exist
only in model A or only in model B, so a DFC has something exclusive to find.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from tooldiff.activations.manifest import Manifest, harvest_identity
from tooldiff.activations.shards import ShardWriter
from tooldiff.activations.welford import Welford
from tooldiff.hf import parse_dtype


def planted_activations(n_rows: int, d_model: int, n_shared: int = 48, n_excl: int = 8, active: int = 4,
                        noise: float = 0.01, seed: int = 0) -> torch.Tensor:
    """x_NMD with M=2: `active` features per row out of n_shared + 2*n_excl; plus a mean offset."""
    gen = torch.Generator().manual_seed(seed)
    n_feat = n_shared + 2 * n_excl
    dirs_A = torch.nn.functional.normalize(torch.randn(n_feat, d_model, generator=gen), dim=1)
    dirs_B = torch.nn.functional.normalize(torch.randn(n_feat, d_model, generator=gen), dim=1)
    dirs_A[n_shared + n_excl :] = 0  # B-exclusive features never reach A
    dirs_B[n_shared : n_shared + n_excl] = 0  # A-exclusive features never reach B
    pick = torch.rand(n_rows, n_feat, generator=gen).argsort(dim=1)[:, :active]
    coef = torch.zeros(n_rows, n_feat).scatter_(1, pick, torch.rand(n_rows, active, generator=gen) * 4 + 1)
    offset = torch.randn(2, d_model, generator=gen) * 3
    x_A = coef @ dirs_A + offset[0] + noise * torch.randn(n_rows, d_model, generator=gen)
    x_B = 2.5 * (coef @ dirs_B) + offset[1] + noise * torch.randn(n_rows, d_model, generator=gen)
    return torch.stack([x_A, x_B], dim=1)


def write_harvest(out: str | Path, acts_NMD: torch.Tensor, *, layer: int = 0,
                  models: tuple[str, str] = ("synthetic-rl", "synthetic-base"), labels: Optional[torch.Tensor] = None,
                  dtype: str = "float32", shard_rows: int = 4096, tag: str = "synthetic") -> Manifest:
    """Write `acts_NMD` as a complete harvest directory (one row per synthetic 'prompt')."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n, _, d = acts_NMD.shape
    labels = torch.zeros(n, dtype=torch.uint8) if labels is None else labels
    manifest = Manifest(
        harvest_id=harvest_identity(list(models), layer, "decision", tag, "none", dtype), models=list(models),
        layer=layer, positions="decision", d_model=d, n_layers=layer + 1, dtype=dtype, model_dtype="float32",
        data_file=tag, data_sha256=tag, n_prompts=n, shard_rows=shard_rows, kinds=["synthetic"],
    )
    stats = Welford(2, d)
    writer = ShardWriter(out, manifest, stats, parse_dtype(dtype))
    for start in range(0, n, shard_rows):
        stop = min(start + shard_rows, n)
        idx = torch.arange(start, stop)
        stats.update(acts_NMD[start:stop].to(parse_dtype(dtype)))
        writer.add(acts_NMD[start:stop], sample=idx, token=torch.zeros_like(idx), decision=torch.ones_like(idx),
                   label=labels[start:stop], kind=torch.zeros_like(idx))
        writer.end_batch(stop)
    writer.finish()
    return manifest
