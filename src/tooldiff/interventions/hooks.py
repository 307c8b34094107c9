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
from typing import Any, Iterator, Optional, Sequence

import torch
from torch import nn

from tooldiff.crosscoder.model import Crosscoder
from tooldiff.errors import UserError
from tooldiff.hf import decoder_layers, layer_hidden, with_layer_hidden
from tooldiff.interventions.bind import BoundIntervention, bind
from tooldiff.interventions.positions import AFTER_PROMPT, CallPositions, PositionTracker
from tooldiff.interventions.spec import Intervention, parse_intervention

InterventionsArg = Sequence[Any] | Sequence[Sequence[Any]] | None


def is_per_row(interventions: InterventionsArg) -> bool:
    """True for a list of per-row lists, False for one list shared by all rows."""
    return bool(interventions) and all(isinstance(item, (list, tuple)) for item in interventions)  # type: ignore[union-attr]


def bind_all(
    interventions: InterventionsArg, model: nn.Module, crosscoder: Optional[Crosscoder], model_index: int
) -> list[BoundIntervention]:
    """Validate and bind every intervention, grouping identical per-row specs by slot."""
    if not interventions:
        return []
    cache: dict[Intervention, Any] = {}

    def edit_of(spec: Intervention):
        if spec not in cache:
            cache[spec] = bind(spec, model, crosscoder, model_index)
        return cache[spec]

    if not is_per_row(interventions):
        specs = [parse_intervention(item) for item in interventions]  # type: ignore[union-attr]
        return [BoundIntervention(spec, edit_of(spec)) for spec in specs]
    device = next(model.parameters()).device  # where the row masks meet the hidden states (usually)
    return _bind_per_row(interventions, edit_of, device)  # type: ignore[arg-type]


def _bind_per_row(per_row: Sequence[Sequence[Any]], edit_of, device: torch.device) -> list[BoundIntervention]:
    rows = [[parse_intervention(item) for item in row] for row in per_row]
    n_rows, bound = len(rows), []
    for slot in range(max(len(row) for row in rows)):
        members: dict[Intervention, list[int]] = {}
        for r, row in enumerate(rows):
            if slot < len(row):
                members.setdefault(row[slot], []).append(r)
        for spec, row_ids in members.items():
            rows_B = torch.zeros(n_rows, dtype=torch.bool, device=device)
            rows_B[row_ids] = True
            bound.append(BoundIntervention(spec, edit_of(spec), rows_B, torch.tensor(row_ids, device=device)))
    return bound


def _layer_hook(bound: list[BoundIntervention], tracker: PositionTracker):
    decoding_items = [item for item in bound if item.positions in AFTER_PROMPT]

    def hook(module: nn.Module, args: tuple, output: Any) -> Any:
        call = tracker.current
        if call is None:
            raise UserError("a decoder layer ran outside a model forward call; interventions cannot place positions")
        if call.decoding:  # the hot path, once per generated token: every position, or none
            return _edit_every_position(decoding_items, output) if decoding_items else output
        return _edit_selected(bound, call, output)

    return hook


def _edit_every_position(items: list[BoundIntervention], output: Any) -> Any:
    h_BTD = layer_hidden(output)
    for item in items:
        h_BTD = _edit_rows(item, h_BTD)
    return with_layer_hidden(output, h_BTD)


def _edit_selected(bound: list[BoundIntervention], call: CallPositions, output: Any) -> Any:
    """A call holding prompt tokens: each item at its selected positions, gathered and scattered."""
    h_BTD = layer_hidden(output)
    new_BTD: Optional[torch.Tensor] = None
    for item in bound:
        _check_rows(item, h_BTD.shape[0])  # decoding calls keep the prefill's batch (the tracker checks)
        where = call.select(item.positions)
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


def _check_rows(item: BoundIntervention, batch: int) -> None:
    if item.rows_B is not None and item.rows_B.shape[0] != batch:
        raise UserError(f"per-row interventions were given for {item.rows_B.shape[0]} rows, but the batch has {batch}")


def _edit_rows(item: BoundIntervention, h_BTD: torch.Tensor) -> torch.Tensor:
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
) -> Iterator[list[BoundIntervention]]:
    """Apply `interventions` to every forward call of `model` inside the `with` block.

    `interventions`: Intervention objects, dicts or JSON strings; either one list for all rows or
    one list per batch row. `model_index` says which crosscoder model the hooked model is
    (0 = A, the RL model; 1 = B, the base). Everything is validated before any hook is added.
    """
    bound = bind_all(interventions, model, crosscoder, model_index)
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
        for layer in sorted({b.layer for b in bound}):
            at_layer = [b for b in bound if b.layer == layer]
            handles.append(layers[layer].register_forward_hook(_layer_hook(at_layer, tracker)))
        yield bound
    finally:
        for handle in handles:
            handle.remove()
