"""Where the crosscoder trainer may use reduced precision, and the switches for it.

Only dense products run in reduced precision: the encoder forward that picks the K live latents
(bf16 or TF32) and, in the `dense` encoder-gradient mode, the gradient product (TF32). Weights,
gradients, losses and Adam stay float32. CPUs gain nothing here, so `auto` means fp32 there,
which also keeps CPU runs reproducible.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

from tooldiff.crosscoder.config import PRECISIONS


def resolve_precision(precision: str, device_type: str) -> str:
    """auto = bf16 on CUDA (the matrix units' full rate), fp32 elsewhere; TF32 is a CUDA mode."""
    if precision == "auto":
        return "bf16" if device_type == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be auto or one of {PRECISIONS}, got {precision!r}")
    return "fp32" if precision == "tf32" and device_type != "cuda" else precision


@contextmanager
def tf32_matmuls() -> Iterator[None]:
    """CUDA float32 matmuls in TF32 inside the block (torch's new-style switch; restored after)."""
    matmul = torch.backends.cuda.matmul
    previous = matmul.fp32_precision
    matmul.fp32_precision = "tf32"
    try:
        yield
    finally:
        matmul.fp32_precision = previous
