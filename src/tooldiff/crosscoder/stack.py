"""C crosscoders of identical shape trained as one set of stacked tensors.

All configurations of a group see the same normalized batch, so their encoders run as ONE
matmul (x_m against every config's W_m at once) and the sparse decode as one embedding_bag.
Configurations may differ in k, λ, lr, seed, AuxK and step count; the shape (d, D,
partition, sparsity kind) must match. A C=1 stack is the plain single-config trainer.

Losses are returned as per-config sums over the local rows divided by the GLOBAL batch size,
so summing gradients over data-parallel ranks gives exactly the full-batch gradient.

Compute (`set_compute`): the dense encoder forward, which picks the K live latents, and (with
`kernels="dense"`, for GPUs) the decode and the encoder's gradient are dense products, which
may run in reduced precision (bf16 operands, or TF32 on CUDA) with float32 results; weights,
gradients, the loss and Adam stay float32. The training step
never asks the device for a value: the per-config constants the step branches on are plain
Python values, so on a GPU the host queues a whole step without waiting (`train.py`).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Optional

import torch
from torch import nn

from tooldiff.crosscoder.config import PRECISIONS, CrosscoderConfig
from tooldiff.crosscoder.ddp import Dist
from tooldiff.crosscoder.model import CheckpointInfo, Crosscoder
from tooldiff.crosscoder.precision import Products, tf32_matmuls
from tooldiff.crosscoder.sparse_ops import KERNELS, SparseEncoderGather, dense_decode, sparse_decode
from tooldiff.crosscoder.sparsity import auxk_select, batchtopk_select, topk_select


class CrosscoderStack(nn.Module):
    def __init__(self, cfgs: list[CrosscoderConfig]):
        super().__init__()
        keys = {c.shape_key() for c in cfgs}
        if len(keys) != 1:
            raise ValueError(f"cannot stack configs of different shapes: {keys}")
        self.cfgs = list(cfgs)
        ref = cfgs[0]
        self.sparsity = ref.sparsity
        self.spans = ref.spans()
        C, L, M, d = len(cfgs), ref.dict_size, ref.n_models, int(ref.d_model)
        self.W_enc = nn.ParameterList([nn.Parameter(torch.zeros(C, b - a, d)) for a, b in self.spans])
        self.W_dec = nn.ParameterList([nn.Parameter(torch.zeros(C, b - a, d)) for a, b in self.spans])
        self.b_enc_CL = nn.Parameter(torch.zeros(C, L))
        self.b_dec_CMD = nn.Parameter(torch.zeros(C, M, d))
        self.register_buffer("theta_C", torch.zeros(C))
        self.register_buffer("k_C", torch.tensor([c.k for c in cfgs]))
        self.register_buffer("aux_k_C", torch.tensor([c.aux_k for c in cfgs]))
        self.register_buffer("lambda_excl_C", torch.tensor([c.lambda_excl for c in cfgs]))
        self.register_buffer("lambda_shared_C", torch.tensor([c.lambda_shared for c in cfgs]))
        self.register_buffer("aux_coef_C", torch.tensor([c.aux_coef for c in cfgs]))
        self.register_buffer("theta_momentum_C", torch.tensor([c.theta_momentum for c in cfgs]))
        self.l1_norm_weighted = [c.use_decoder_norm_l1 for c in cfgs]
        # What the step branches on, as Python values: reading them from device tensors would
        # make the host wait for the device at every step.
        self.k_max = max(c.k for c in cfgs)
        self.has_l1 = any(c.lambda_excl > 0 or c.lambda_shared > 0 for c in cfgs)
        self.has_aux = any(c.aux_k > 0 for c in cfgs)
        self.aux_k_max = min(max(c.aux_k for c in cfgs), ref.dict_size)
        self.register_buffer("l1_weighted_C", torch.tensor(self.l1_norm_weighted), persistent=False)
        self.register_buffer("score_mean_C", torch.tensor([c.batchtopk_score == "mean" for c in cfgs]),
                             persistent=False)
        self.tied_rows = (ref.n_excl_a, ref.n_shared) if ref.tie_shared else None
        # Tied rows are one RAW direction: normalized rows differ by the scale ratio s_A / s_B.
        self.register_buffer("tie_ratio", torch.ones(()), persistent=False)
        self.precision, self.kernels = "fp32", "sparse"  # see set_compute

    # --- conversion to and from single crosscoders ------------------------------------------
    @classmethod
    def from_crosscoders(cls, ccs: list[Crosscoder]) -> "CrosscoderStack":
        stack = cls([cc.cfg for cc in ccs])
        with torch.no_grad():
            for m in range(len(stack.spans)):
                stack.W_enc[m].copy_(torch.stack([cc.W_enc_LD[m] for cc in ccs]))
                stack.W_dec[m].copy_(torch.stack([cc.W_dec_LD[m] for cc in ccs]))
            stack.b_enc_CL.copy_(torch.stack([cc.b_enc_L for cc in ccs]))
            stack.b_dec_CMD.copy_(torch.stack([cc.b_dec_MD for cc in ccs]))
            stack.theta_C.copy_(torch.stack([cc.theta for cc in ccs]))
        return stack

    def export(self, c: int, mean_MD: torch.Tensor, scale_M: torch.Tensor, info: CheckpointInfo) -> Crosscoder:
        cc = Crosscoder(self.cfgs[c], info)
        with torch.no_grad():
            for m in range(len(self.spans)):
                cc.W_enc_LD[m].copy_(self.W_enc[m][c])
                cc.W_dec_LD[m].copy_(self.decoder(m)[c])
            cc.b_enc_L.copy_(self.b_enc_CL[c])
            cc.b_dec_MD.copy_(self.b_dec_CMD[c])
            cc.theta.copy_(self.theta_C[c])
        cc.set_normalization(mean_MD, scale_M)
        return cc.eval()

    @property
    def n_configs(self) -> int:
        return len(self.cfgs)

    # --- pieces of the forward pass ---------------------------------------------------------
    def set_normalization_scale(self, scale_M: torch.Tensor) -> None:
        """Tell tied shared latents the per-model scales, so that they write one raw vector."""
        self.tie_ratio.fill_(float(scale_M[0] / scale_M[-1]))

    def decoder(self, m: int) -> torch.Tensor:
        """Model m's decoder (C, L_m, d), normalized space. Tied shared latents read model A's
        rows for B too (rescaled, so that both models get the same raw vector); B's own shared
        rows then get no gradient and are never used."""
        if self.tied_rows is None or m == 0:
            return self.W_dec[m]
        n_excl_a, n_shared = self.tied_rows
        return torch.cat([self.W_dec[0][:, n_excl_a:] * self.tie_ratio, self.W_dec[m][:, n_shared:]], dim=1)

    def set_compute(self, precision: str, kernels: str = "sparse") -> None:
        """The dense products' precision (fp32, tf32 or bf16; see the module doc) and how the
        K-sparse parts run: `sparse` gathers (CPUs) or `dense` products (GPUs; sparse_ops.py)."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if kernels not in KERNELS:
            raise ValueError(f"kernels must be one of {KERNELS}, got {kernels!r}")
        self.precision, self.kernels = precision, kernels

    @property
    def products(self) -> Optional[Products]:
        """The dense products of the K-sparse parts, or None where they run as sparse gathers."""
        return Products(self.precision) if self.kernels == "dense" else None

    def preactivation(self, xn_BMD: torch.Tensor) -> torch.Tensor:
        """pre_BCL = b_enc + Σ_m x_m W_m^T over each model's own slice, in the set precision."""
        if self.precision == "bf16":
            return self._preactivation_bf16(xn_BMD)
        with tf32_matmuls() if self.precision == "tf32" else nullcontext():
            return self._preactivation_fp32(xn_BMD)

    def _preactivation_fp32(self, xn_BMD: torch.Tensor) -> torch.Tensor:
        """One matmul per model, each over its own slice of the latents."""
        B, C, L = xn_BMD.shape[0], self.n_configs, self.b_enc_CL.shape[1]
        pre_BCL = self.b_enc_CL.unsqueeze(0).expand(B, C, L).clone()
        for m, (a, b) in enumerate(self.spans):
            W = self.W_enc[m]
            pre_BCL[:, :, a:b] += (xn_BMD[:, m] @ W.reshape(-1, W.shape[-1]).T).view(B, C, b - a)
        return pre_BCL

    def _preactivation_bf16(self, xn_BMD: torch.Tensor) -> torch.Tensor:
        """ONE bf16 matmul [x_A | x_B] @ W_CL(Md)^T, W holding each model's rows at its latents and
        zeros elsewhere (the layout of sparse_ops.concat_rows): one large aligned product runs near
        the chip's matrix rate, where per-model products over misaligned slices, plus the adds into
        their overlap, would cost as much as the math. The zero blocks cost their share of FLOPs.
        W lives in a buffer kept between steps, so only the owned blocks are rewritten: building
        it anew (concat_rows) took the encoder forward from 47 % to 35 % of the bf16 matmul rate
        on an H200 (docs/notes/2026-12-04-gpu-paper-scale.md)."""
        B, M, d = xn_BMD.shape
        C, L = self.b_enc_CL.shape
        W_CLK = self._bf16_encoder(C, L, M * d, xn_BMD.device)
        for m, (a, b) in enumerate(self.spans):
            W_CLK[:, a:b, m * d:(m + 1) * d] = self.W_enc[m].detach()
        bias_CL = self.b_enc_CL.detach().to(torch.bfloat16)
        pre = torch.addmm(bias_CL.reshape(-1), xn_BMD.reshape(B, M * d).to(torch.bfloat16), W_CLK.view(C * L, -1).T)
        return pre.view(B, C, L)

    def _bf16_encoder(self, C: int, L: int, K: int, device: torch.device) -> torch.Tensor:
        """The reused (C, L, M*d) bf16 buffer; the cells no model owns stay zero."""
        buf = getattr(self, "_W_bf16", None)
        if buf is None or buf.shape != (C, L, K) or buf.device != device:
            buf = self._W_bf16 = torch.zeros(C, L, K, dtype=torch.bfloat16, device=device)
        return buf

    def decoder_norms_CML(self) -> torch.Tensor:
        C, L = self.b_enc_CL.shape
        norms = self.b_enc_CL.new_zeros(C, len(self.spans), L)
        for m, (a, b) in enumerate(self.spans):
            norms[:, m, a:b] = self.decoder(m).norm(dim=2)
        return norms

    def batchtopk_score_CL(self) -> torch.Tensor:
        norms = self.decoder_norms_CML().detach()
        total = norms.sum(1)
        owners = torch.zeros_like(total[0])
        for a, b in self.spans:
            owners[a:b] += 1
        return torch.where(self.score_mean_C[:, None], total / owners, total)

    def decode(self, vals_BCK: torch.Tensor, idx_BCK: torch.Tensor, bias: bool = True) -> torch.Tensor:
        products = self.products
        if products is not None:
            decoders = [self.decoder(m) for m in range(len(self.spans))]
            xhat_BCMD = dense_decode(vals_BCK, idx_BCK, decoders, self.spans, self.b_enc_CL.shape[1], products)
        else:
            parts = [sparse_decode(vals_BCK, idx_BCK, self.decoder(m), span) for m, span in enumerate(self.spans)]
            xhat_BCMD = torch.stack(parts, dim=2)
        return xhat_BCMD + self.b_dec_CMD if bias else xhat_BCMD

    def gather(self, pre_BCL: torch.Tensor, idx_BCK: torch.Tensor, xn_BMD: torch.Tensor) -> torch.Tensor:
        return SparseEncoderGather.apply(pre_BCL, idx_BCK, tuple(self.spans), self.products, xn_BMD,
                                         self.b_enc_CL, *self.W_enc)

    def l1_terms(self, f_BCK: torch.Tensor, idx_BCK: torch.Tensor) -> torch.Tensor:
        """The paper's λ_excl·(|f_{A∪S}| + |f_{B∪S}|)/2 + λ_sh·|f_S|, summed over rows (local)."""
        if not self.has_l1:
            return f_BCK.new_zeros(self.n_configs)
        weight_BCK = f_BCK.abs()
        if any(self.l1_norm_weighted):
            norms_CL = self.decoder_norms_CML().sum(1)
            norms_CL = torch.where(self.l1_weighted_C[:, None], norms_CL, torch.ones_like(norms_CL))
            weight_BCK = weight_BCK * norms_CL.unsqueeze(0).expand(f_BCK.shape[0], -1, -1).gather(2, idx_BCK)
        (a0, b0), (a1, b1) = self.spans[0], self.spans[-1]
        in_a = (idx_BCK >= a0) & (idx_BCK < b0)
        in_b = (idx_BCK >= a1) & (idx_BCK < b1)
        per_set = lambda mask: (weight_BCK * mask).sum((0, 2))  # noqa: E731
        return self.lambda_excl_C * (per_set(in_a) + per_set(in_b)) / 2 + self.lambda_shared_C * per_set(in_a & in_b)

    # --- the training forward ---------------------------------------------------------------
    def training_loss(self, xn_BMD: torch.Tensor, n_global: int, dead_CL: Optional[torch.Tensor],
                      dist: Dist, update_theta: bool = True) -> tuple[torch.Tensor, dict, torch.Tensor]:
        """Per-config loss (local rows / global batch), its parts, and which latents fired."""
        if self.sparsity == "l1":
            return self._dense_l1_loss(xn_BMD, n_global)
        with torch.no_grad():
            pre_BCL = self.preactivation(xn_BMD)
            if self.sparsity == "topk":
                idx_BCK, keep_BCK = topk_select(pre_BCL, self.k_C, self.k_max)
            else:
                idx_BCK, keep_BCK, thr_C = batchtopk_select(pre_BCL, self.batchtopk_score_CL(), self.k_C, n_global, dist)
                if update_theta:
                    self._update_theta(thr_C)
        f_BCK = torch.relu(self.gather(pre_BCL, idx_BCK, xn_BMD)) * keep_BCK
        xhat_BCMD = self.decode(f_BCK, idx_BCK)
        err_BCMD = xhat_BCMD - xn_BMD.unsqueeze(1)
        M, d = xn_BMD.shape[1:]
        mse_C = err_BCMD.pow(2).sum((0, 2, 3)) / (n_global * M * d)
        l1_C = self.l1_terms(f_BCK, idx_BCK) / n_global
        aux_C = self._auxk_loss(pre_BCL, xn_BMD, -err_BCMD.detach(), dead_CL, dist)  # residual x - x̂
        fired_CL = self._fired(idx_BCK, f_BCK > 0)
        loss_C = mse_C + l1_C + self.aux_coef_C * aux_C
        return loss_C, {"mse": mse_C.detach(), "l1": l1_C.detach(), "aux": aux_C.detach()}, fired_CL

    def _update_theta(self, thr_C: torch.Tensor) -> None:
        """θ ← EMA of the smallest kept v (the batch threshold); the first step sets it outright."""
        mom = self.theta_momentum_C
        self.theta_C.copy_(torch.where(self.theta_C > 0, mom * self.theta_C + (1 - mom) * thr_C, thr_C))

    def _fired(self, idx_BCK: torch.Tensor, live_BCK: torch.Tensor) -> torch.Tensor:
        C, L = self.b_enc_CL.shape
        fired = torch.zeros(C, L, device=idx_BCK.device)
        fired.scatter_add_(1, idx_BCK.permute(1, 0, 2).reshape(C, -1), live_BCK.permute(1, 0, 2).reshape(C, -1).float())
        return fired > 0

    def _auxk_loss(self, pre_BCL, xn_BMD, resid_BCMD, dead_CL, dist: Dist) -> torch.Tensor:
        """AuxK: the top aux_k DEAD latents reconstruct the residual; normalized by its variance."""
        C = self.n_configs
        zero = resid_BCMD.new_zeros(C)
        if dead_CL is None or not self.has_aux:
            return zero
        has_dead_C = dead_CL.any(1) & (self.aux_k_C > 0)
        # Skipping a step without dead latents is worth a host-device sync only on the CPU; on a
        # GPU the masked terms below come out zero instead.
        if has_dead_C.device.type == "cpu" and not dist.any(bool(has_dead_C.any())):
            return zero
        with torch.no_grad():
            idx_BCK, keep_BCK = auxk_select(pre_BCL, dead_CL, self.aux_k_C, self.aux_k_max)
            # Σ over rows of (e - ē)², with ē and the sums over the GLOBAL batch.
            s1 = resid_BCMD.sum(0)
            s2 = resid_BCMD.pow(2).sum(0)
            n = resid_BCMD.new_full((), float(resid_BCMD.shape[0]))
            s1, s2, n = dist.all_reduce_sum([s1, s2, n])
            var_C = (s2 - s1.pow(2) / n).sum((1, 2)).clamp_min(1e-12)
        f_BCK = torch.relu(self.gather(pre_BCL, idx_BCK, xn_BMD)) * keep_BCK
        ehat_BCMD = self.decode(f_BCK, idx_BCK, bias=False)
        err_C = (ehat_BCMD - resid_BCMD).pow(2).sum((0, 2, 3))
        return torch.where(has_dead_C, err_C / var_C, zero)

    def _dense_l1_loss(self, xn_BMD: torch.Tensor, n_global: int) -> tuple[torch.Tensor, dict, torch.Tensor]:
        """ReLU encoder, no TopK: the paper's L1 terms are the only sparsity pressure."""
        B, C, L = xn_BMD.shape[0], self.n_configs, self.b_enc_CL.shape[1]
        parts = [self.b_enc_CL.unsqueeze(0).expand(B, C, L)]
        for m, (a, b) in enumerate(self.spans):
            contrib = torch.einsum("bd,cld->bcl", xn_BMD[:, m], self.W_enc[m])
            parts.append(nn.functional.pad(contrib, (a, L - b)))
        f_BCL = torch.relu(torch.stack(parts).sum(0))
        xhat = [torch.einsum("bcl,cld->bcd", f_BCL[:, :, a:b], self.decoder(m)) for m, (a, b) in enumerate(self.spans)]
        err_BCMD = torch.stack(xhat, dim=2) + self.b_dec_CMD - xn_BMD.unsqueeze(1)
        M, d = xn_BMD.shape[1:]
        mse_C = err_BCMD.pow(2).sum((0, 2, 3)) / (n_global * M * d)
        idx_BCL = torch.arange(L, device=f_BCL.device).expand(B, C, L)
        l1_C = self.l1_terms(f_BCL, idx_BCL) / n_global
        fired_CL = (f_BCL > 0).any(0)
        return mse_C + l1_C, {"mse": mse_C.detach(), "l1": l1_C.detach(), "aux": torch.zeros_like(mse_C)}, fired_CL
