"""Adam for a stack of configurations, with each config's gradient clipped on its own.

Every parameter has a leading config axis C. Clipping uses each config's own global norm
(over all its parameters), as if it were trained alone; then one Adam update serves the whole
stack (a stack shares lr, betas and eps by construction: see `train.group_configs`).

The update uses torch's fused Adam kernel when present: one pass over memory instead of ~9,
which matters because Adam is memory-bound and a stack holds C crosscoders. It is called
directly rather than through `torch.optim.Adam(fused=True)`, whose constructor imports
torch._dynamo (~2 s per process). The state is plain tensors, so it checkpoints to safetensors.
"""

from __future__ import annotations

import math

import torch


class StackedAdam:
    def __init__(self, params: list[torch.Tensor], lr: float, clip_C: torch.Tensor, betas: tuple[float, float],
                 eps: float):
        self.params = params
        self.lr, self.eps = lr, eps
        self.beta1, self.beta2 = betas
        self.clip_C = clip_C.float()
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in params]

    def grad_norm_C(self) -> torch.Tensor:
        """Each config's global gradient norm: one reading pass per parameter, no squared copy."""
        norms_PC = torch.stack([torch.linalg.vector_norm(p.grad.flatten(1), dim=1) for p in self.params])
        return torch.linalg.vector_norm(norms_PC, dim=0)

    @torch.no_grad()
    def step(self) -> torch.Tensor:
        """Clip each config's gradient to its own max norm, then update; returns pre-clip norms."""
        norm_C = self.grad_norm_C()
        scale_C = torch.where(self.clip_C > 0, (self.clip_C / (norm_C + 1e-6)).clamp(max=1.0), torch.ones_like(norm_C))
        # Always multiplied (by exactly 1 where nothing is clipped): asking the device whether
        # any config needs clipping would stall every step on a GPU.
        for p in self.params:
            p.grad.mul_(scale_C.view(-1, *([1] * (p.ndim - 1))))
        for t in self.steps:
            t += 1
        if hasattr(torch, "_fused_adam_"):
            torch._fused_adam_([p.data for p in self.params], [p.grad for p in self.params], self.exp_avg,
                               self.exp_avg_sq, [], self.steps, lr=self.lr, beta1=self.beta1, beta2=self.beta2,
                               weight_decay=0.0, eps=self.eps, amsgrad=False, maximize=False)
        else:
            self._reference_step()
        return norm_C

    def _reference_step(self) -> None:
        """Plain Adam (Kingma & Ba), for torch builds without the fused kernel."""
        for p, m, v, t in zip(self.params, self.exp_avg, self.exp_avg_sq, self.steps):
            step = int(t)
            m.lerp_(p.grad, 1 - self.beta1)
            v.mul_(self.beta2).addcmul_(p.grad, p.grad, value=1 - self.beta2)
            denom = (v.sqrt() / math.sqrt(1 - self.beta2**step)).add_(self.eps)
            p.data.addcdiv_(m, denom, value=-self.lr / (1 - self.beta1**step))

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def state_tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        out = {}
        for i, (m, v, t) in enumerate(zip(self.exp_avg, self.exp_avg_sq, self.steps)):
            out.update({f"{prefix}{i}.exp_avg": m, f"{prefix}{i}.exp_avg_sq": v, f"{prefix}{i}.step": t.reshape(1)})
        return out

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], prefix: str) -> None:
        for i, (m, v, t) in enumerate(zip(self.exp_avg, self.exp_avg_sq, self.steps)):
            m.copy_(tensors[f"{prefix}{i}.exp_avg"])
            v.copy_(tensors[f"{prefix}{i}.exp_avg_sq"])
            t.copy_(tensors[f"{prefix}{i}.step"].reshape(()))
