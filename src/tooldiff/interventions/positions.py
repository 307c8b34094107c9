"""Which positions of the current forward call are prompt, last-prompt or generated tokens.

A forward pre-hook on the whole model reads each call's inputs and attention mask, so the
same logic serves our generation loop, HF `model.generate` and a plain forward pass:

- the number of cached tokens is `attention_mask.shape[1] - T` (HF passes the mask of past
  plus current tokens), or the cache's own length when no mask is given;
- a call with nothing cached is a prefill: all its real tokens are the prompt, and the prompt
  length is remembered so that later calls (decoding under the KV cache) are "generated";
- the last prompt token of each row is the last column whose mask is 1, found from the mask,
  never assumed (column -1 under left padding);
- pad positions (mask 0) are never selected.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tooldiff.errors import UserError


@dataclass
class CallPositions:
    """Boolean masks over the (B, T) positions of one forward call."""

    real_BT: torch.Tensor
    prompt_BT: torch.Tensor
    last_prompt_BT: torch.Tensor
    generated_BT: torch.Tensor
    is_prefill: bool
    selects_nothing: bool = False  # a decoding call when every intervention is prompt-only

    def select(self, positions: str) -> torch.Tensor:
        if positions == "last_prompt":
            return self.last_prompt_BT
        if positions == "prompt":
            return self.prompt_BT
        if positions == "generated":
            return self.generated_BT
        if positions == "all":
            return self.prompt_BT | self.generated_BT
        raise UserError(f"unknown positions {positions!r}")


class PositionTracker:
    """Fed by a forward pre-hook; holds the positions of the call in flight."""

    def __init__(self, model: nn.Module, prompt_only: bool = False) -> None:
        self._arg_names = list(inspect.signature(model.forward).parameters)
        # With only last_prompt/prompt interventions, decoding calls select nothing: skip their
        # masks, which would otherwise be most of the per-token cost of steering (the server).
        self.prompt_only = prompt_only
        self.prompt_len: int | None = None
        self.last_prompt_col_B: torch.Tensor | None = None
        self.current: CallPositions | None = None

    def pre_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        inputs = dict(zip(self._arg_names, args)) | kwargs
        self.current = self.positions_of_call(inputs)

    def post_hook(self, module: nn.Module, args: tuple, output: Any) -> None:
        self.current = None  # stale positions must never reach a layer run outside a model call

    def positions_of_call(self, inputs: dict[str, Any]) -> CallPositions:
        batch, length, device = _call_shape(inputs)
        mask = inputs.get("attention_mask")
        if mask is not None and mask.ndim != 2:
            raise UserError("interventions need a 2-D attention mask (batch x tokens)")
        n_past = mask.shape[1] - length if mask is not None else _cache_length(inputs.get("past_key_values"))
        if n_past < 0:
            raise UserError(f"attention mask has {mask.shape[1]} columns for {length} new tokens")
        if n_past > 0 and self.prompt_only and self.prompt_len is not None:
            return _NOTHING_SELECTED
        real_BT = (mask[:, n_past:] != 0) if mask is not None else torch.ones(batch, length, dtype=torch.bool, device=device)
        if n_past == 0:
            self._start_prompt(real_BT)
        elif self.prompt_len is None:
            raise UserError("interventions cannot place positions: the first call under intervene() already had a KV cache")
        return self._masks(real_BT, n_past)

    def _start_prompt(self, real_BT: torch.Tensor) -> None:
        length = real_BT.shape[1]
        cols_BT = torch.arange(length, device=real_BT.device).expand_as(real_BT)
        # The last real column of each row: -1 under left padding, earlier under right padding.
        last_B = torch.where(real_BT, cols_BT, torch.full_like(cols_BT, -1)).amax(dim=1)
        if bool((last_B < 0).any()):
            raise UserError("a row of the batch has no real token (attention mask all zero)")
        self.prompt_len = length
        self.last_prompt_col_B = last_B

    def _masks(self, real_BT: torch.Tensor, n_past: int) -> CallPositions:
        assert self.prompt_len is not None and self.last_prompt_col_B is not None
        if self.last_prompt_col_B.shape[0] != real_BT.shape[0]:
            raise UserError(
                f"batch size changed from {self.last_prompt_col_B.shape[0]} to {real_BT.shape[0]} during generation"
            )
        cols_T = n_past + torch.arange(real_BT.shape[1], device=real_BT.device)
        in_prompt_BT = (cols_T < self.prompt_len).expand_as(real_BT)
        last_BT = cols_T.unsqueeze(0) == self.last_prompt_col_B.unsqueeze(1)
        return CallPositions(
            real_BT=real_BT,
            prompt_BT=real_BT & in_prompt_BT,
            last_prompt_BT=real_BT & last_BT,
            generated_BT=real_BT & ~in_prompt_BT,
            is_prefill=n_past == 0,
        )


_EMPTY_BT = torch.zeros(0, 0, dtype=torch.bool)
_NOTHING_SELECTED = CallPositions(_EMPTY_BT, _EMPTY_BT, _EMPTY_BT, _EMPTY_BT, is_prefill=False, selects_nothing=True)


def _call_shape(inputs: dict[str, Any]) -> tuple[int, int, torch.device]:
    ids = inputs.get("input_ids")
    if ids is not None:
        return ids.shape[0], ids.shape[1], ids.device
    embeds = inputs.get("inputs_embeds")
    if embeds is not None:
        return embeds.shape[0], embeds.shape[1], embeds.device
    raise UserError("interventions need input_ids or inputs_embeds in the forward call")


def _cache_length(cache: Any) -> int:
    if cache is None:
        return 0
    if hasattr(cache, "get_seq_length"):
        return int(cache.get_seq_length())
    return int(cache[0][0].shape[-2])  # legacy tuple of (key, value) per layer
