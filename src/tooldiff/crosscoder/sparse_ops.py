"""Sparse encoder backward and sparse decode for stacked crosscoders.

With TopK/BatchTopK only K of L latents are live in a row, so:
- the encoder's gradient touches K rows of W_enc per row of the batch: a sparse (L x B)
  matrix times the batch, instead of the dense (L x B) x (B x d) product;
- decoding is a weighted sum of K decoder rows: `embedding_bag(mode="sum")`, whose backward
  is sparse as well.
Only the dense encoder forward (to find the top K) remains dense: that is the floor.

Tensor layout is batch-major and stacked over C configurations: pre_BCL, idx_BCK.
A model m owns latents [a, b); its weights are W_m of shape (C, b - a, d). A selected
latent outside [a, b) simply has no weight for m: its contribution is dropped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tooldiff.crosscoder.precision import tf32_matmuls

# How SparseEncoderGather forms W_enc's gradient: `sparse` multiplies a (rows of W) x (batch)
# sparse matrix with K entries per batch row by the batch; `dense` scatters the K values into a
# zero (B, L) gradient and multiplies densely (TF32 on CUDA) — 2·B·L·d FLOPs, which a GPU's
# matrix units may still do sooner than the sparse product.
GRAD_MODES = ("sparse", "dense")


def local_rows(idx_BCK: torch.Tensor, span: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Row indices into W_m flattened to (C * L_m, d), and which slots model m owns."""
    a, b = span
    n_local = b - a
    owned = (idx_BCK >= a) & (idx_BCK < b)
    local = (idx_BCK - a).clamp_(0, n_local - 1)
    config_offset = torch.arange(idx_BCK.shape[1], device=idx_BCK.device).view(1, -1, 1) * n_local
    return local + config_offset, owned


class SparseEncoderGather(torch.autograd.Function):
    """vals_BCK = pre_BCL.gather(idx) where pre = b_enc + Σ_m x_m W_m^T; sparse backward.

    `pre_BCL` is the (detached) dense pre-activation already computed for the selection, so
    the forward is a gather (read back in float32 when the selection ran in bf16); the backward
    sends gradient only to the K selected rows.
    """

    @staticmethod
    def forward(ctx, pre_BCL, idx_BCK, spans, grad_mode, xs_MBD, b_enc_CL, *weights):
        ctx.spans, ctx.grad_mode = spans, grad_mode
        ctx.save_for_backward(idx_BCK, xs_MBD, *weights)
        ctx.b_shape = b_enc_CL.shape
        return pre_BCL.gather(2, idx_BCK).float()

    @staticmethod
    def backward(ctx, grad_BCK):
        idx_BCK, xs_MBD, *weights = ctx.saved_tensors
        B, C, K = idx_BCK.shape
        grad_b = None
        if ctx.needs_input_grad[5]:
            grad_b = grad_BCK.new_zeros(ctx.b_shape)
            grad_b.scatter_add_(1, idx_BCK.permute(1, 0, 2).reshape(C, -1), grad_BCK.permute(1, 0, 2).reshape(C, -1))
        if ctx.grad_mode == "dense":
            return (None, None, None, None, None, grad_b, *_dense_weight_grads(grad_BCK, idx_BCK, ctx.b_shape[1],
                                                                               ctx.spans, xs_MBD))
        grads_w = []
        batch_of_slot = torch.arange(B, device=idx_BCK.device).view(B, 1, 1).expand(B, C, K).reshape(-1)
        for m, (w, span) in enumerate(zip(weights, ctx.spans)):
            rows, owned = local_rows(idx_BCK, span)
            values = (grad_BCK * owned).reshape(-1)
            coo = torch.sparse_coo_tensor(torch.stack([rows.reshape(-1), batch_of_slot]), values,
                                          (w.shape[0] * w.shape[1], B), check_invariants=False)
            grads_w.append(torch.sparse.mm(coo, xs_MBD[m]).view_as(w))
        return (None, None, None, None, None, grad_b, *grads_w)


def _dense_weight_grads(grad_BCK: torch.Tensor, idx_BCK: torch.Tensor, L: int, spans, xs_MBD: torch.Tensor):
    """Each W_m's gradient (C, L_m, d) as one dense product with the scattered (B, C, L) gradient."""
    B, C, _ = idx_BCK.shape
    grad_BCL = grad_BCK.new_zeros(B, C, L).scatter_(2, idx_BCK, grad_BCK)
    with tf32_matmuls():
        return [torch.einsum("bcl,bd->cld", grad_BCL[:, :, a:b], xs_MBD[m]) for m, (a, b) in enumerate(spans)]


def sparse_decode(vals_BCK: torch.Tensor, idx_BCK: torch.Tensor, W_dec: torch.Tensor, span: tuple[int, int]) -> torch.Tensor:
    """x̂_BCD (no bias) for the model owning `span`, from K active latents per row."""
    B, C, K = idx_BCK.shape
    rows, owned = local_rows(idx_BCK, span)
    weight = W_dec.reshape(-1, W_dec.shape[-1])
    out = F.embedding_bag(rows.reshape(B * C, K), weight, per_sample_weights=(vals_BCK * owned).reshape(B * C, K),
                          mode="sum")
    return out.view(B, C, -1)
