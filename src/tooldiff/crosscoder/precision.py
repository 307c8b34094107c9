"""How the crosscoder step computes on each device: the dense products' precision, and whether
the K-sparse parts run as sparse gathers or dense products.

Only dense products run in reduced precision: the encoder forward that picks the K live latents
and, with dense kernels, the decode and the encoder's gradient (bf16 operands or TF32, float32
results). Weights, gradients, losses and Adam stay float32. CPUs gain nothing from either, so
`auto` means fp32 and sparse there, which also keeps CPU runs reproducible.
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


def resolve_kernels(kernels: str, device_type: str) -> str:
    """auto = dense products on CUDA (the matrix units beat K-row gathers there), sparse elsewhere."""
    if kernels == "auto":
        return "dense" if device_type == "cuda" else "sparse"
    return kernels


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


class Products:
    """The step's dense products in one precision: fp32 as is, TF32 (CUDA), or bf16 operands
    with a float32 result. Autograd flows through the casts, so gradients come back float32."""

    def __init__(self, precision: str = "fp32"):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.precision = precision

    @property
    def dtype(self) -> torch.dtype:
        """The operands' dtype: build big operands in it directly and the cast in `einsum` is free."""
        return torch.bfloat16 if self.precision == "bf16" else torch.float32

    def einsum(self, equation: str, *operands: torch.Tensor) -> torch.Tensor:
        if self.precision == "bf16":
            return torch.einsum(equation, *(t.to(torch.bfloat16) for t in operands)).float()
        if self.precision == "tf32":
            with tf32_matmuls():
                return torch.einsum(equation, *operands)
        return torch.einsum(equation, *operands)
