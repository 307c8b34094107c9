"""`intervene(...)`: forward hooks that apply interventions while a block of code runs.

One forward pre-hook on the model tracks positions (prefill vs decoding, pads, the last prompt
token; see positions.py), and one forward hook per touched decoder layer edits that layer's
output at the selected positions only. Unselected positions, pads above all, are left
bit-for-bit untouched: the edit gathers the selected rows, transforms them and scatters back.
When a call's every position is selected (a decoding step under `all` or `generated`), the
edit runs on the whole hidden state (or on its whole rows, per row) instead: no position mask,
no nonzero, no copy, as this runs once per generated token and must cost little next to the
model's own step.

Interventions are either one list for every row, or one list per batch row (per-request
steering). Per-row lists are applied slot by slot (the k-th intervention of every row
together), so each row sees its own interventions in its own order; rows that share a spec
in a slot share one edit call.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

import torch
from torch import nn

from tooldiff.crosscoder.model import Crosscoder
from tooldiff.errors import UserError
from tooldiff.hf import decoder_layers, layer_hidden, with_layer_hidden
from tooldiff.interventions.bind import BoundIntervention, Edit, bind, model_key
from tooldiff.interventions.positions import AFTER_PROMPT, CallPositions, PositionTracker
from tooldiff.interventions.spec import Intervention, parse_intervention

# Items: Interventions, dicts or JSON strings of them, or BoundInterventions (bound for this model).
InterventionsArg = Sequence[Any] | Sequence[Sequence[Any]] | None


def is_per_row(interventions: InterventionsArg) -> bool:
    """True for a list of per-row lists, False for one list shared by all rows."""
    return bool(interventions) and all(isinstance(item, (list, tuple)) for item in interventions)  # type: ignore[union-attr]


def bind_interventions(
    interventions: InterventionsArg, model: nn.Module, crosscoder: Optional[Crosscoder], model_index: int
) -> list:
    """The same list (or per-row lists) with every item bound for `model`: each distinct spec is
    validated and bound once; an item that is already bound is checked to be bound for `model`."""
    if not interventions:
        return []
    key, cache = model_key(model, model_index), {}

    def bound(item: Any) -> BoundIntervention:
        if isinstance(item, BoundIntervention):
            if item.model_key != key:
                raise UserError("an intervention bound for another model (or crosscoder side) cannot run on this one")
            return item
        spec = parse_intervention(item)
        if spec not in cache:
            cache[spec] = bind(spec, model, crosscoder, model_index)
        return cache[spec]

    if is_per_row(interventions):
        return [[bound(item) for item in row] for row in interventions]  # type: ignore[union-attr]
    return [bound(item) for item in interventions]  # type: ignore[union-attr]


@dataclass(frozen=True, eq=False)
class PlacedIntervention:
    """A bound intervention and the batch rows it edits: None = all rows. Per-row interventions
    carry their rows twice: as a mask `rows_B` (combined with position masks) and as indices
    `row_ids` (to gather whole rows when every position is selected)."""

    bound: BoundIntervention
    rows_B: Optional[torch.Tensor] = None
    row_ids: Optional[torch.Tensor] = None

    @property
    def edit(self) -> Edit:
        return self.bound.edit


def _place(bound: list, device: torch.device) -> list[PlacedIntervention]:
    """Per-row lists are applied slot by slot; rows that share a spec in a slot share one edit."""
    if not is_per_row(bound):
        return [PlacedIntervention(b) for b in bound]
    n_rows, placed = len(bound), []
    for slot in range(max(len(row) for row in bound)):
        members: dict[Intervention, tuple[BoundIntervention, list[int]]] = {}
        for r, row in enumerate(bound):
            if slot < len(row):
                members.setdefault(row[slot].spec, (row[slot], []))[1].append(r)
        for first, row_ids in members.values():
            rows_B = torch.zeros(n_rows, dtype=torch.bool, device=device)
            rows_B[row_ids] = True
            placed.append(PlacedIntervention(first, rows_B, torch.tensor(row_ids, device=device)))
    return placed


def _layer_hook(bound: list[PlacedIntervention], tracker: PositionTracker):
    decoding_items = [item for item in bound if item.bound.positions in AFTER_PROMPT]

    def hook(module: nn.Module, args: tuple, output: Any) -> Any:
        call = tracker.current
        if call is None:
            raise UserError("a decoder layer ran outside a model forward call; interventions cannot place positions")
        if call.decoding:  # the hot path, once per generated token: every position, or none
            return _edit_every_position(decoding_items, output) if decoding_items else output
        return _edit_selected(bound, call, output)

    return hook


def _edit_every_position(items: list[PlacedIntervention], output: Any) -> Any:
    h_BTD = layer_hidden(output)
    for item in items:
        h_BTD = _edit_rows(item, h_BTD)
    return with_layer_hidden(output, h_BTD)


def _edit_selected(bound: list[PlacedIntervention], call: CallPositions, output: Any) -> Any:
    """A call holding prompt tokens: each item at its selected positions, gathered and scattered."""
    h_BTD = layer_hidden(output)
    new_BTD: Optional[torch.Tensor] = None
    for item in bound:
        _check_rows(item, h_BTD.shape[0])  # decoding calls keep the prefill's batch (the tracker checks)
        where = call.select(item.bound.positions)
        if where is False:
            continue
        now_BTD = h_BTD if new_BTD is None else new_BTD
        if where is True:  # no pads: nothing to gather
            new_BTD = _edit_rows(item, now_BTD)
            continue
        if item.rows_B is not None:
            where = where & item.rows_B.to(where.device).unsqueeze(1)
        index = where.nonzero(as_tuple=True)
        if index[0].numel() == 0:
            continue
        new_BTD = now_BTD.clone() if new_BTD is None else new_BTD
        new_BTD[index] = item.edit(new_BTD[index])
    return output if new_BTD is None else with_layer_hidden(output, new_BTD)


def _check_rows(item: PlacedIntervention, batch: int) -> None:
    if item.rows_B is not None and item.rows_B.shape[0] != batch:
        raise UserError(f"per-row interventions were given for {item.rows_B.shape[0]} rows, but the batch has {batch}")


def _edit_rows(item: PlacedIntervention, h_BTD: torch.Tensor) -> torch.Tensor:
    """h with the item's edit at every position of its rows (all rows unless per-row)."""
    if item.row_ids is None:
        return item.edit(h_BTD)
    ids_R = item.row_ids if item.row_ids.device == h_BTD.device else item.row_ids.to(h_BTD.device)  # split models
    return h_BTD.index_copy(0, ids_R, item.edit(h_BTD.index_select(0, ids_R)))


@contextmanager
def intervene(
    model: nn.Module,
    interventions: InterventionsArg,
    crosscoder: Optional[Crosscoder] = None,
    model_index: int = 0,
) -> Iterator[list[PlacedIntervention]]:
    """Apply `interventions` to every forward call of `model` inside the `with` block.

    `interventions`: Intervention objects, dicts or JSON strings, or interventions already bound
    for `model` (`bind`, `bind_interventions`: run as they are, not bound again); either one list
    for all rows or one list per batch row. `model_index` says which crosscoder model the hooked
    model is (0 = A, the RL model; 1 = B, the base). Everything is validated before any hook is
    added. Yields what runs: one entry per intervention (per slot and spec, for per-row lists).
    """
    device = next(model.parameters()).device  # where the row masks meet the hidden states (usually)
    bound = _place(bind_interventions(interventions, model, crosscoder, model_index), device)
    if not bound:
        yield bound
        return
    tracker = PositionTracker(model)
    layers = decoder_layers(model)
    handles = [
        model.register_forward_pre_hook(tracker.pre_hook, with_kwargs=True),
        model.register_forward_hook(tracker.post_hook),
    ]
    try:
        for layer in sorted({b.bound.layer for b in bound}):
            at_layer = [b for b in bound if b.bound.layer == layer]
            handles.append(layers[layer].register_forward_hook(_layer_hook(at_layer, tracker)))
        yield bound
    finally:
        for handle in handles:
            handle.remove()
