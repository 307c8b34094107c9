"""Next-token choice for a batch: greedy, or temperature / top-p sampling with one RNG per row.

A generator per row (seeded from the row's own seed) makes a row's sample independent of the
other rows in its batch, so batching never changes a seeded result.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch


class RowSampler:
    def __init__(self, temperature: float, top_p: float, seeds: Sequence[Optional[int]]):
        self.temperature, self.top_p = temperature, top_p
        self.generators = [self._generator(s) for s in seeds] if temperature > 0 else []

    @staticmethod
    def _generator(seed: Optional[int]) -> torch.Generator:
        gen = torch.Generator()
        if seed is None:
            gen.seed()  # fresh entropy: an unseeded request is not reproducible, by design
        else:
            gen.manual_seed(seed)
        return gen

    def pick(self, logits_BV: torch.Tensor) -> torch.Tensor:
        """The next token of every row: argmax at temperature 0, else a nucleus sample."""
        if self.temperature == 0:
            return logits_BV.argmax(dim=-1)
        probs_BV = torch.softmax(logits_BV / self.temperature, dim=-1).cpu()
        picks = [self._sample_row(p_V, gen) for p_V, gen in zip(probs_BV, self.generators)]
        return torch.tensor(picks, device=logits_BV.device)

    def _sample_row(self, probs_V: torch.Tensor, gen: torch.Generator) -> int:
        sorted_V, order_V = probs_V.sort(descending=True)
        # Keep the smallest prefix whose mass reaches top_p (the top token always stays).
        keep_V = (sorted_V.cumsum(0) - sorted_V) < self.top_p
        kept_V = sorted_V * keep_V
        choice = torch.multinomial(kept_V / kept_V.sum(), 1, generator=gen)
        return int(order_V[choice])
