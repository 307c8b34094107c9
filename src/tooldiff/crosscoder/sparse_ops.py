"""The step's K-sparse parts: the encoder's gradient and the decode, sparse or dense.

With TopK/BatchTopK only K of L latents are live in a row, so:
- the encoder's gradient touches K rows of W_enc per row of the batch: a sparse (L x B)
  matrix times the batch, instead of the dense (L x B) x (B x d) product;
- decoding is a weighted sum of K decoder rows: `embedding_bag(mode="sum")`, whose backward
  is sparse as well.
That is what a CPU wants. A GPU's matrix units do the dense products (the K values scattered
into a zero (B, L) matrix) sooner than these gathers, which read K·d numbers per row at memory
speed (docs/notes/2026-12-04-gpu-paper-scale.md): `kernels = "dense"` there, in the step's
`Products` precision. Only the dense encoder forward (to find the top K) is dense either way.

The dense products run over ALL L latents and both models at once, against weights laid out
(C, L, M·d) with zeros where a model owns no latent (`concat_rows`): a model's own slice starts
at latent n_excl_a, an offset cuBLAS cannot use its fast kernels at (they want 16-byte aligned
operands), so one aligned product with a few zero rows beats two misaligned ones.

Tensor layout is batch-major and stacked over C configurations: pre_BCL, idx_BCK.
A model m owns latents [a, b); its weights are W_m of shape (C, b - a, d). A selected
latent outside [a, b) simply has no weight for m: its contribution is dropped.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from tooldiff.crosscoder.precision import Products

KERNELS = ("sparse", "dense")


def local_rows(idx_BCK: torch.Tensor, span: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Row indices into W_m flattened to (C * L_m, d), and which slots model m owns."""
    a, b = span
    n_local = b - a
    owned = (idx_BCK >= a) & (idx_BCK < b)
    local = (idx_BCK - a).clamp_(0, n_local - 1)
    config_offset = torch.arange(idx_BCK.shape[1], device=idx_BCK.device).view(1, -1, 1) * n_local
    return local + config_offset, owned


class SparseEncoderGather(torch.autograd.Function):
    """vals_BCK = pre_BCL.gather(idx) where pre = b_enc + Σ_m x_m W_m^T; gradient to K rows only.

    `pre_BCL` is the (detached) dense pre-activation already computed for the selection, so
    the forward is a gather (read back in float32 when the selection ran in bf16). The backward
    forms W_enc's gradient sparsely, or densely with `products` (see the module docstring).
    """

    @staticmethod
    def forward(ctx, pre_BCL, idx_BCK, spans, products: Optional[Products], xn_BMD, b_enc_CL, *weights):
        ctx.spans, ctx.products = spans, products
        ctx.save_for_backward(idx_BCK, xn_BMD, *weights)
        ctx.b_shape = b_enc_CL.shape
        return pre_BCL.gather(2, idx_BCK).float()

    @staticmethod
    def backward(ctx, grad_BCK):
        idx_BCK, xn_BMD, *weights = ctx.saved_tensors
        B, C, K = idx_BCK.shape
        grad_b = None
        if ctx.needs_input_grad[5]:
            grad_b = grad_BCK.new_zeros(ctx.b_shape)
            grad_b.scatter_add_(1, idx_BCK.permute(1, 0, 2).reshape(C, -1), grad_BCK.permute(1, 0, 2).reshape(C, -1))
        if ctx.products is not None:
            grad_BCL = grad_BCK.new_zeros(B, C, ctx.b_shape[1]).scatter_(2, idx_BCK, grad_BCK)
            G_CLK = ctx.products.einsum("bcl,bk->clk", grad_BCL, xn_BMD.reshape(B, -1))
            d = xn_BMD.shape[2]
            grads_w = [G_CLK[:, a:b, m * d:(m + 1) * d].contiguous() for m, (a, b) in enumerate(ctx.spans)]
            return (None, None, None, None, None, grad_b, *grads_w)
        xs_MBD = xn_BMD.transpose(0, 1)
        grads_w = []
        batch_of_slot = torch.arange(B, device=idx_BCK.device).view(B, 1, 1).expand(B, C, K).reshape(-1)
        for m, (w, span) in enumerate(zip(weights, ctx.spans)):
            rows, owned = local_rows(idx_BCK, span)
            values = (grad_BCK * owned).reshape(-1)
            coo = torch.sparse_coo_tensor(torch.stack([rows.reshape(-1), batch_of_slot]), values,
                                          (w.shape[0] * w.shape[1], B), check_invariants=False)
            grads_w.append(torch.sparse.mm(coo, xs_MBD[m]).view_as(w))
        return (None, None, None, None, None, grad_b, *grads_w)


def sparse_decode(vals_BCK: torch.Tensor, idx_BCK: torch.Tensor, W_dec: torch.Tensor, span: tuple[int, int]) -> torch.Tensor:
    """x̂_BCD (no bias) for the model owning `span`, from K active latents per row."""
    B, C, K = idx_BCK.shape
    rows, owned = local_rows(idx_BCK, span)
    weight = W_dec.reshape(-1, W_dec.shape[-1])
    out = F.embedding_bag(rows.reshape(B * C, K), weight, per_sample_weights=(vals_BCK * owned).reshape(B * C, K),
                          mode="sum")
    return out.view(B, C, -1)


def concat_rows(weights: list[torch.Tensor], spans: list[tuple[int, int]], L: int, dtype: torch.dtype) -> torch.Tensor:
    """Each model's (C, L_m, d) rows placed at its latents, models side by side: (C, L, M·d), zeros
    where a model owns no latent. Differentiable: each model's gradient is its own block."""
    blocks = [F.pad(W.to(dtype), (0, 0, a, L - b)) for W, (a, b) in zip(weights, spans)]
    return torch.cat(blocks, dim=2)


def dense_decode(vals_BCK: torch.Tensor, idx_BCK: torch.Tensor, decoders: list[torch.Tensor],
                 spans: list[tuple[int, int]], L: int, products: Products) -> torch.Tensor:
    """x̂_BCMD (no bias) as ONE dense product: the K values scattered into a zero (B, C, L) matrix
    times every model's decoder side by side (`concat_rows`)."""
    B, C, _ = idx_BCK.shape
    f_BCL = vals_BCK.new_zeros(B, C, L).scatter(2, idx_BCK, vals_BCK)
    W_CLK = concat_rows(decoders, spans, L, products.dtype)
    return products.einsum("bcl,clk->bck", f_BCL, W_CLK).view(B, C, len(decoders), -1)
