"""Which positions of the current forward call are prompt, last-prompt or generated tokens.

A forward pre-hook on the whole model reads each call's inputs and attention mask, so the
same logic serves our generation loop, HF `model.generate` and a plain forward pass:

- the number of cached tokens is `attention_mask.shape[1] - T` (HF passes the mask of past
  plus current tokens), or the cache's own length when no mask is given;
- a call with nothing cached is a prefill: all its real tokens are the prompt, and the prompt
  length is remembered so that later calls (decoding under the KV cache) are "generated";
- the last prompt token of each row is the last column whose mask is 1, found from the mask,
  never assumed (column -1 under left padding);
- prompt pads (mask 0) are never selected. Tokens fed after the prompt are generated tokens,
  never pads: generation appends a 1 to the mask for each new token (HF `generate` does, for
  finished rows too, and so does our loop). Decoding calls therefore never look at the mask's
  values: that would cost a few tensor ops and a device sync at every generated token.

A selection is `True` (every position of the call), `False` (none) or a (B, T) boolean mask.
The two constants are the common cases, and they cost no tensor work: a decoding step selects
nothing for the prompt placements and everything for generated/all. Masks are built only
when a hook asks for them, once per call.
"""

from __future__ import annotations

import inspect
from typing import Any, Optional

import torch
from torch import nn

from tooldiff.errors import UserError

Selection = torch.Tensor | bool


class CallPositions:
    """The positions of one forward call: `T` new tokens after `n_past` cached ones."""

    __slots__ = ("_mask_BT", "n_past", "length", "prompt_len", "last_prompt_col_B", "decoding", "_selected", "_real")

    def __init__(self, mask_BT: Optional[torch.Tensor], n_past: int, length: int, prompt_len: int,
                 last_prompt_col_B: torch.Tensor):
        self._mask_BT, self.n_past, self.length = mask_BT, n_past, length
        self.prompt_len, self.last_prompt_col_B = prompt_len, last_prompt_col_B
        self.decoding = n_past >= prompt_len  # only generated tokens: a decoding step under the KV cache
        self._selected: dict[str, Selection] = {}
        self._real: Optional[Selection] = None

    def select(self, positions: str) -> Selection:
        """Which positions `positions` selects in this call (computed once per call)."""
        if self.decoding:  # the hot path: no tensor, no lookup
            return positions in AFTER_PROMPT
        selected = self._selected.get(positions)
        if selected is None:
            selected = self._selected[positions] = self._compute(positions)
        return selected

    def _compute(self, positions: str) -> Selection:
        """A call holding prompt tokens: a prefill, or one that straddles the prompt's end."""
        if positions not in ("last_prompt", "prompt", "generated", "all"):
            raise UserError(f"unknown positions {positions!r}")
        all_prompt = self.n_past + self.length <= self.prompt_len
        if positions == "all" or (positions == "prompt" and all_prompt):
            return self.real()
        if positions == "generated" and all_prompt:
            return False
        batch = self.last_prompt_col_B.shape[0]
        cols_T = self.n_past + torch.arange(self.length, device=self.last_prompt_col_B.device)
        if positions == "last_prompt":
            return _and(self.real(), cols_T.unsqueeze(0) == self.last_prompt_col_B.unsqueeze(1), batch)
        in_prompt_1T = (cols_T < self.prompt_len).unsqueeze(0)
        return _and(self.real(), in_prompt_1T if positions == "prompt" else ~in_prompt_1T, batch)

    def real(self) -> Selection:
        """The non-pad positions of a call holding prompt tokens: True when it has no pads."""
        if self._real is None:
            if self._mask_BT is None:
                self._real = True
            else:
                mask_BT = self._mask_BT[:, self.n_past:]
                self._real = True if bool(mask_BT.all()) else mask_BT != 0
        return self._real


AFTER_PROMPT = ("generated", "all")  # the placements that select a decoding step (all of it)


def _and(a: Selection, b_BT: torch.Tensor, batch: int) -> torch.Tensor:
    """a & b as a (B, T) mask, for a selection a and a mask b broadcastable to (B, T)."""
    return b_BT.expand(batch, -1) if a is True else a & b_BT


class PositionTracker:
    """Fed by a forward pre-hook; holds the positions of the call in flight."""

    def __init__(self, model: nn.Module) -> None:
        self._arg_names = list(inspect.signature(model.forward).parameters)
        self.prompt_len: int | None = None
        self.last_prompt_col_B: torch.Tensor | None = None
        self.batch: int | None = None
        self.current: CallPositions | None = None

    def pre_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        inputs = dict(zip(self._arg_names, args)) | kwargs if args else kwargs
        self.current = self.positions_of_call(inputs)

    def post_hook(self, module: nn.Module, args: tuple, output: Any) -> None:
        self.current = None  # stale positions must never reach a layer run outside a model call

    def positions_of_call(self, inputs: dict[str, Any]) -> CallPositions:
        tokens = _tokens_of(inputs)
        batch, length = tokens.shape[:2]
        mask = inputs.get("attention_mask")
        if mask is not None and mask.ndim != 2:
            raise UserError("interventions need a 2-D attention mask (batch x tokens)")
        n_past = mask.shape[1] - length if mask is not None else _cache_length(inputs.get("past_key_values"))
        if n_past < 0:
            raise UserError(f"attention mask has {mask.shape[1]} columns for {length} new tokens")
        if n_past == 0:
            self._start_prompt(mask, batch, length, tokens.device)
        elif self.prompt_len is None:
            raise UserError("interventions cannot place positions: the first call under intervene() already had a KV cache")
        assert self.prompt_len is not None and self.last_prompt_col_B is not None
        if self.batch != batch:
            raise UserError(f"batch size changed from {self.batch} to {batch} during generation")
        return CallPositions(mask, n_past, length, self.prompt_len, self.last_prompt_col_B)

    def _start_prompt(self, mask: Optional[torch.Tensor], batch: int, length: int, device: torch.device) -> None:
        if mask is None:
            last_B = torch.full((batch,), length - 1, device=device)
        else:
            real_BT = mask != 0
            cols_BT = torch.arange(length, device=real_BT.device).expand_as(real_BT)
            # The last real column of each row: -1 under left padding, earlier under right padding.
            last_B = torch.where(real_BT, cols_BT, torch.full_like(cols_BT, -1)).amax(dim=1)
            if bool((last_B < 0).any()):
                raise UserError("a row of the batch has no real token (attention mask all zero)")
        self.prompt_len, self.last_prompt_col_B, self.batch = length, last_B, batch


def _tokens_of(inputs: dict[str, Any]) -> torch.Tensor:
    """The call's new tokens: input_ids (B, T) or inputs_embeds (B, T, D)."""
    ids = inputs.get("input_ids")
    if ids is not None:
        return ids
    embeds = inputs.get("inputs_embeds")
    if embeds is not None:
        return embeds
    raise UserError("interventions need input_ids or inputs_embeds in the forward call")


def _cache_length(cache: Any) -> int:
    if cache is None:
        return 0
    if hasattr(cache, "get_seq_length"):
        return int(cache.get_seq_length())
    return int(cache[0][0].shape[-2])  # legacy tuple of (key, value) per layer
