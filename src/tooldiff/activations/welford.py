"""Running per-channel mean and variance of each model's activations (Welford / Chan merge).

Kept in float64 so that millions of rows do not lose precision; saved with the shards so
a resumed harvest continues the same statistics.
"""

from __future__ import annotations

import torch


class Welford:
    def __init__(self, n_models: int, d_model: int):
        self.count = 0
        self.mean_MD = torch.zeros(n_models, d_model, dtype=torch.float64)
        self.m2_MD = torch.zeros(n_models, d_model, dtype=torch.float64)

    def update(self, x_NMD: torch.Tensor) -> None:
        """Merge a batch of rows (Chan et al.'s parallel formula: exact, order-independent)."""
        n = x_NMD.shape[0]
        if n == 0:
            return
        x = x_NMD.to(torch.float64)
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
        return {"count": torch.tensor([self.count], dtype=torch.int64), "mean_MD": self.mean_MD.clone(),
                "m2_MD": self.m2_MD.clone(), "var_MD": self.var_MD}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> "Welford":
        mean = state["mean_MD"]
        w = cls(mean.shape[0], mean.shape[1])
        w.count = int(state["count"][0])
        w.mean_MD = mean.to(torch.float64).clone()
        w.m2_MD = state["m2_MD"].to(torch.float64).clone()
        return w
