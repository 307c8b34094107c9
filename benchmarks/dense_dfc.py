"""The two crosscoder training steps every crosscoder benchmark times side by side.

- `dense_masked_step`: the paper's DFC as published: full (M, d, D) encoder and (M, D, d)
  decoder weights for both models, binary masks multiplied into the weights in the forward pass
  and re-applied after every step, torch's Adam and `clip_grad_norm_`. `precision="bf16"` runs
  its forward under CUDA autocast, the way one would speed that code up; "fp32" is what it does
  as written (torch's default: no TF32).
- `trainer_step`: tooldiff's own trainer (`SweepTrainer`: batch drawing, the stacked loss,
  clipping and Adam, the dead-latent counters), one or several configurations of one shape at
  once, with its compute settings (precision, kernels, CUDA graph) as given.

Neither step reads a value back from the device: timing loops synchronize once at the end.
"""

from __future__ import annotations

import tempfile
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import torch

Step = Callable[[torch.Tensor], None]


def dense_masked_step(d: int, D: int, k: int, excl: float, lam: float, device: str = "cpu",
                      precision: str = "fp32") -> Step:
    M, nA, nB = 2, int(excl * D), int(excl * D)
    mask_MD = torch.zeros(M, D, device=device)
    mask_MD[0, : D - nB] = 1
    mask_MD[1, nA:] = 1
    W_enc = torch.nn.Parameter(torch.randn(M, d, D, device=device) / d**0.5)
    W_dec = torch.nn.Parameter(torch.randn(M, D, d, device=device) / d**0.5)
    b_enc = torch.nn.Parameter(torch.zeros(D, device=device))
    b_dec = torch.nn.Parameter(torch.zeros(M, d, device=device))
    params = [W_enc, W_dec, b_enc, b_dec]
    opt = torch.optim.Adam(params, lr=1e-4)
    autocast = (torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
                if precision == "bf16" else nullcontext())

    def step(x_BMD: torch.Tensor) -> None:
        with autocast:
            enc = W_enc * mask_MD[:, None, :]
            pre = torch.einsum("bmd,mdl->bl", x_BMD, enc) + b_enc
            vals, idx = torch.relu(pre).topk(k, dim=1)
            f = torch.zeros_like(pre).scatter(1, idx, vals)
            dec = W_dec * mask_MD[:, :, None]
            xhat = torch.einsum("bl,mld->bmd", f, dec) + b_dec
            f_a, f_b = f * mask_MD[0], f * mask_MD[1]
            shared = f * mask_MD[0] * mask_MD[1]
            loss = ((xhat.float() - x_BMD).pow(2).mean()
                    + lam * (f_a.abs().mean() + f_b.abs().mean()) / 2 + lam * shared.abs().mean())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        with torch.no_grad():  # the paper re-applies the masks after every step
            W_enc.mul_(mask_MD[:, None, :])
            W_dec.mul_(mask_MD[:, :, None])

    return step


def synthetic_harvest(d: int, rows: int) -> Path:
    """A harvest directory of `rows` random float32 rows of width d per model (what the trainer reads)."""
    from tooldiff.activations.synthetic import write_harvest

    out = Path(tempfile.mkdtemp(prefix="bench-acts-")) / "acts"
    write_harvest(out, torch.randn(rows, 2, d), shard_rows=rows)
    return out


def trainer_step(acts: Path, D: int, k: int, excl: float, lam: float, batch: int, device: str = "cpu",
                 n_configs: int = 1, **train: object) -> Callable[[], None]:
    """tooldiff's own trainer (`SweepTrainer`, its batch drawing included) on the harvest `acts`:
    `n_configs` stacked configurations (seeds 0..n-1 of one shape); `train` sets TrainConfig fields
    (precision, kernels, cuda_graph). Each call is one training step; `.trainer` is the trainer."""
    from tooldiff.activations import load_activations
    from tooldiff.crosscoder.config import parse_sweep
    from tooldiff.crosscoder.ddp import Dist
    from tooldiff.crosscoder.train import SweepTrainer
    from tooldiff.hf import resolve_device

    sweep = parse_sweep({"train": {"batch_size": batch, "eval_rows": 0, **train},
                         "crosscoder": [{"name": f"c{s}", "dict_size": D, "excl_a": excl, "excl_b": excl, "k": k,
                                         "lambda_excl": lam, "lambda_shared": lam, "seed": s, "steps": 10**9}
                                        for s in range(n_configs)]})
    out = Path(tempfile.mkdtemp(prefix="bench-trainer-"))
    trainer = SweepTrainer(load_activations(acts), sweep, out, resolve_device(device), Dist())

    def step() -> None:
        trainer._train_step()
        trainer.step += 1

    step.trainer = trainer  # type: ignore[attr-defined]
    return step
