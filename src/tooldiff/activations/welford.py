"""Running per-channel mean and variance of each model's activations (Welford / Chan merge).

Kept in float64 so that millions of rows do not lose precision; saved with the shards so
a resumed harvest continues the same statistics. The sums live on the device of the rows they
see (a GPU harvest merges each batch where it was computed); `state()` is always on the CPU.
"""

from __future__ import annotations

import torch


class Welford:
    def __init__(self, n_models: int, d_model: int, device: torch.device | str = "cpu"):
        self.count = 0
        self.mean_MD = torch.zeros(n_models, d_model, dtype=torch.float64, device=device)
        self.m2_MD = torch.zeros(n_models, d_model, dtype=torch.float64, device=device)

    def update(self, x_NMD: torch.Tensor) -> None:
        """Merge a batch of rows (Chan et al.'s parallel formula: exact, order-independent)."""
        n = x_NMD.shape[0]
        if n == 0:
            return
        x = x_NMD.to(device=self.mean_MD.device, dtype=torch.float64)
        batch_mean = x.mean(0)
        batch_m2 = ((x - batch_mean) ** 2).sum(0)
        total = self.count + n
        delta = batch_mean - self.mean_MD
        self.mean_MD += delta * (n / total)
        self.m2_MD += batch_m2 + delta**2 * (self.count * n / total)
        self.count = total

    @property
    def var_MD(self) -> torch.Tensor:
        return self.m2_MD / max(self.count - 1, 1)

    def state(self) -> dict[str, torch.Tensor]:
        return {"count": torch.tensor([self.count], dtype=torch.int64), "mean_MD": self.mean_MD.cpu().clone(),
                "m2_MD": self.m2_MD.cpu().clone(), "var_MD": self.var_MD.cpu()}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], device: torch.device | str = "cpu") -> "Welford":
        mean = state["mean_MD"]
        w = cls(mean.shape[0], mean.shape[1], device)
        w.count = int(state["count"][0])
        w.mean_MD = mean.to(device=device, dtype=torch.float64).clone()
        w.m2_MD = state["m2_MD"].to(device=device, dtype=torch.float64).clone()
        return w
