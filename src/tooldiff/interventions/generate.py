"""Batched generation under interventions: left padding, KV cache, greedy or sampled.

Our own small loop rather than HF `model.generate`, because it makes the parts that matter
explicit: position ids from the attention mask (left padding), one prefill call then one
token per call under the KV cache, a per-row seed (a row's sample does not depend on its batch
mates), per-row interventions, and stop strings. The hooks themselves do not depend on this
loop; `intervene()` also works around `model.generate` or a plain forward.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable, Literal, Optional, Sequence

import torch
from torch import nn

from tooldiff.crosscoder.model import Crosscoder
from tooldiff.errors import UserError
from tooldiff.hf import render_prompt
from tooldiff.interventions.hooks import InterventionsArg, bind_interventions, intervene, is_per_row
from tooldiff.progress import progress_bar
from tooldiff.interventions.sampling import RowSampler


@dataclass
class Completion:
    text: str
    token_ids: list[int]
    finish_reason: Literal["stop", "length"]
    prompt_tokens: int


# on_token(prompt_index, token) -> True to end that row now (the server's own stops, deadlines).
OnToken = Callable[[int, int], bool]
# adjust_logits(prompt_indices_of_the_batch_rows, logits_BV) -> logits_BV (e.g. ban a token).
AdjustLogits = Callable[[list[int], torch.Tensor], torch.Tensor]


@dataclass
class _LoopSettings:
    max_new_tokens: int
    stop: list[str]
    temperature: float
    top_p: float
    on_token: Optional[OnToken]
    adjust_logits: Optional[AdjustLogits]


def generate(
    model: nn.Module,
    tokenizer: Any,
    prompts: Sequence[str | dict],
    interventions: InterventionsArg = None,
    crosscoder: Optional[Crosscoder] = None,
    model_index: int = 0,
    **kwargs: Any,
) -> list[str]:
    """Completion texts (prompt removed, special tokens skipped); see `generate_completions`."""
    completions = generate_completions(model, tokenizer, prompts, interventions, crosscoder, model_index, **kwargs)
    return [c.text for c in completions]


def generate_completions(
    model: nn.Module,
    tokenizer: Any,
    prompts: Sequence[str | dict],
    interventions: InterventionsArg = None,
    crosscoder: Optional[Crosscoder] = None,
    model_index: int = 0,
    max_new_tokens: int = 200,
    batch_size: int = 8,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | Sequence[int] | None = None,
    stop: Sequence[str] = (),
    add_special_tokens: bool = False,
    progress: bool = True,
    on_token: Optional[OnToken] = None,
    adjust_logits: Optional[AdjustLogits] = None,
) -> list[Completion]:
    """Generate for every prompt (a string, or a prompt record rendered by its chat template).

    `interventions` is one list for all prompts or one list per prompt (aligned with `prompts`).
    temperature 0 is greedy; otherwise row i samples with `seed + i` (or `seed[i]`), so its
    output does not depend on batching. Prompts are batched by length to limit padding.
    `on_token` and `adjust_logits` (indices into `prompts`) let a caller such as the server
    end rows early, stream, or ban tokens.
    """
    _check_args(prompts, max_new_tokens, batch_size, temperature, top_p)
    texts = [render_prompt(tokenizer, p) if isinstance(p, dict) else p for p in prompts]
    ids = [_encode(tokenizer, t, add_special_tokens) for t in texts]
    bound = bind_interventions(interventions, model, crosscoder, model_index)  # once, not per batch
    per_row = _per_row_interventions(bound, len(prompts))
    seeds = _row_seeds(seed, len(prompts))
    settings = _LoopSettings(max_new_tokens, [s for s in stop if s], temperature, top_p, on_token, adjust_logits)
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    results: list[Optional[Completion]] = [None] * len(ids)
    with progress_bar("generating", total=len(ids), enabled=progress) as advance:
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            batch_iv = [per_row[i] for i in rows] if per_row is not None else bound
            loop = _BatchLoop(model, tokenizer, settings, RowSampler(temperature, top_p, [seeds[i] for i in rows]))
            with intervene(model, batch_iv, model_index=model_index):
                for i, completion in zip(rows, loop.run(rows, [ids[i] for i in rows])):
                    results[i] = completion
            advance(len(rows))
    return results  # type: ignore[return-value]


def _check_args(prompts: Sequence, max_new_tokens: int, batch_size: int, temperature: float, top_p: float) -> None:
    if isinstance(prompts, str):
        raise UserError("prompts must be a list of strings, not one string")
    if max_new_tokens < 1:
        raise UserError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if batch_size < 1:
        raise UserError(f"batch_size must be >= 1, got {batch_size}")
    if not (math.isfinite(temperature) and temperature >= 0):
        raise UserError(f"temperature must be a finite number >= 0, got {temperature}")
    if not (math.isfinite(top_p) and 0 < top_p <= 1):
        raise UserError(f"top_p must be in (0, 1], got {top_p}")


def _encode(tokenizer: Any, text: str, add_special_tokens: bool) -> list[int]:
    ids = tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]
    if not ids:
        raise UserError(f"prompt {text[:40]!r} tokenizes to nothing")
    return list(ids)


def _per_row_interventions(interventions: InterventionsArg, n: int) -> Optional[list]:
    if not is_per_row(interventions):
        return None
    if len(interventions) != n:  # type: ignore[arg-type]
        raise UserError(f"per-row interventions: {len(interventions)} lists for {n} prompts")  # type: ignore[arg-type]
    return list(interventions)  # type: ignore[arg-type]


def _row_seeds(seed: int | Sequence[int] | None, n: int) -> list[Optional[int]]:
    if seed is None:
        return [None] * n
    if isinstance(seed, int):
        return [seed + i for i in range(n)]
    if len(seed) != n:
        raise UserError(f"{len(seed)} seeds for {n} prompts")
    return [int(s) for s in seed]


def _eos_ids(model: nn.Module, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), tokenizer):
        eos = getattr(source, "eos_token_id", None)
        ids.update([eos] if isinstance(eos, int) else (eos or []))
    return ids


class _BatchLoop:
    """One batch: left-pad, prefill, then one token per step under the KV cache."""

    def __init__(self, model: nn.Module, tokenizer: Any, settings: _LoopSettings, sampler: RowSampler):
        self.model, self.tokenizer, self.settings, self.sampler = model, tokenizer, settings, sampler
        self.eos = _eos_ids(model, tokenizer)
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (min(self.eos) if self.eos else 0)
        self.device = next(model.parameters()).device
        # Only the last position's logits are needed; older architectures may not take the knob.
        takes_keep = "logits_to_keep" in inspect.signature(model.forward).parameters
        self.extra: dict[str, Any] = {"logits_to_keep": 1} if takes_keep else {}

    def run(self, rows: list[int], ids: list[list[int]]) -> list[Completion]:
        """Completions for `ids`; `rows` are their indices in the caller's prompt list."""
        input_BT, mask_BT = self._left_pad(ids)
        pos_BT = (mask_BT.cumsum(-1) - 1).clamp(min=0)
        generated: list[list[int]] = [[] for _ in ids]
        finished = [False] * len(ids)
        max_new = self.settings.max_new_tokens
        with torch.no_grad():
            out = self.model(input_ids=input_BT, attention_mask=mask_BT, position_ids=pos_BT, use_cache=True, **self.extra)
            for step in range(max_new):
                next_B = self.sampler.pick(self._logits(rows, out.logits[:, -1].float()))
                self._record(rows, next_B.tolist(), generated, finished)
                if all(finished) or step == max_new - 1:
                    break
                mask_BT = torch.cat([mask_BT, mask_BT.new_ones(len(ids), 1)], dim=1)
                pos_BT = pos_BT[:, -1:] + 1
                out = self.model(
                    input_ids=next_B.unsqueeze(1), attention_mask=mask_BT, position_ids=pos_BT,
                    past_key_values=out.past_key_values, use_cache=True, **self.extra,
                )
        return [self._completion(g, f, len(i)) for g, f, i in zip(generated, finished, ids)]

    def _logits(self, rows: list[int], logits_BV: torch.Tensor) -> torch.Tensor:
        adjust = self.settings.adjust_logits
        return adjust(rows, logits_BV) if adjust is not None else logits_BV

    def _left_pad(self, ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(row) for row in ids)
        input_BT = torch.full((len(ids), width), self.pad_id, dtype=torch.long)
        mask_BT = torch.zeros((len(ids), width), dtype=torch.long)
        for r, row in enumerate(ids):
            input_BT[r, width - len(row):] = torch.tensor(row)
            mask_BT[r, width - len(row):] = 1
        return input_BT.to(self.device), mask_BT.to(self.device)

    def _record(self, rows: list[int], tokens: list[int], generated: list[list[int]], finished: list[bool]) -> None:
        on_token = self.settings.on_token
        for r, token in enumerate(tokens):
            if finished[r]:
                continue  # a finished row's tokens are computed but discarded
            if token in self.eos:
                finished[r] = True
                continue
            generated[r].append(token)
            if on_token is not None and on_token(rows[r], token):
                finished[r] = True
            elif self.settings.stop and self._hits_stop(generated[r]):
                finished[r] = True

    def _hits_stop(self, row: list[int]) -> bool:
        # A stop string spans at most len(stop) tokens; decode a short tail, not the whole row.
        stop = self.settings.stop
        tail = self.tokenizer.decode(row[-(max(map(len, stop)) + 2):], skip_special_tokens=True)
        return any(s in tail for s in stop)

    def _completion(self, row: list[int], finished: bool, n_prompt: int) -> Completion:
        text = self.tokenizer.decode(row, skip_special_tokens=True)
        cuts = [text.find(s) for s in self.settings.stop if s in text]
        if cuts:
            text = text[:min(cuts)]
        return Completion(text=text, token_ids=row, finish_reason="stop" if finished else "length", prompt_tokens=n_prompt)
