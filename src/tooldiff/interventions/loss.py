"""What a splice costs the model's next-token predictions: CE and KL, against clean and zero-ablated.

A splice (layer L's output replaced by the crosscoder's reconstruction) can move tool
correctness for reasons that have nothing to do with tool features: it may simply damage the
model. The standard check (SAELens, dictionary_learning) is the loss recovered,

    CE_recovered = (CE_zero - CE_splice) / (CE_zero - CE_clean),

1 when the splice costs nothing, 0 when it is as bad as zeroing the layer's output; beside it the
KL of the clean next-token distribution to the intervened one. Measured on any texts (generic
text, rendered tool prompts), at the positions the splice acts on:
- `all`: every real token is edited; CE over every next-token pair, KL at every position;
- `last_prompt`: only the last token (the decision position, where the experiment splices); the
  texts have no token after it, so there is KL and no CE there.
Zero-ablation edits exactly the same positions.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

import torch
from torch import nn

from tooldiff.activations.harvest import pad_token_ids
from tooldiff.errors import UserError
from tooldiff.hf import decoder_layers, layer_hidden, with_layer_hidden
from tooldiff.interventions.hooks import intervene
from tooldiff.progress import progress_bar

POSITIONS = ("all", "last_prompt")


@dataclass(frozen=True)
class LossRecovered:
    positions: str
    n_texts: int
    n_tokens: int  # predicted tokens the CE averages over (0 for last_prompt)
    n_positions: int  # positions the KL averages over
    ce_clean: Optional[float]
    ce_splice: Optional[float]
    ce_zero: Optional[float]
    kl_splice: float  # mean KL(clean || spliced) per position, nats
    kl_zero: float

    @property
    def ce_recovered(self) -> Optional[float]:
        if self.ce_clean is None or self.ce_zero == self.ce_clean:
            return None
        return (self.ce_zero - self.ce_splice) / (self.ce_zero - self.ce_clean)

    @property
    def kl_recovered(self) -> Optional[float]:
        """1 - KL_splice / KL_zero: the same scale as CE_recovered, where there is no CE."""
        return None if self.kl_zero == 0 else 1 - self.kl_splice / self.kl_zero

    def to_dict(self) -> dict:
        return {**self.__dict__, "ce_recovered": self.ce_recovered, "kl_recovered": self.kl_recovered}


@dataclass
class _Sums:
    ce: float = 0.0
    kl: float = 0.0


def loss_recovered(model: nn.Module, tokenizer: Any, texts: Sequence[str], splice: Sequence[Any],
                   crosscoder: Any = None, model_index: int = 0, positions: str = "all", batch_size: int = 16,
                   max_tokens: int = 256, progress: bool = True) -> LossRecovered:
    """CE and KL with `splice` (interventions, e.g. one `reconstruct` at `positions`) and with
    layer L zeroed at the same positions, against the clean model, over `texts` (a progress bar
    unless `progress` is off: a caller measuring many splices shows its own)."""
    if positions not in POSITIONS:
        raise UserError(f"loss recovered is measured at {'|'.join(POSITIONS)} positions, not {positions!r}")
    layers = {getattr(s, "layer", None) for s in splice}
    if len(layers) != 1 or None in layers:
        raise UserError("loss recovered needs interventions on one layer")
    (layer,) = layers
    device = next(model.parameters()).device
    clean, spliced, zeroed, n_tokens, n_positions = _Sums(), _Sums(), _Sums(), 0, 0
    with progress_bar("loss recovered", total=len(texts), enabled=progress) as advance:
        for start in range(0, len(texts), batch_size):
            ids_BT, mask_BT = right_padded(tokenizer, texts[start:start + batch_size], max_tokens, device)
            logits = {"clean": logits_of(model, ids_BT, mask_BT)}
            with intervene(model, splice, crosscoder, model_index):
                logits["splice"] = logits_of(model, ids_BT, mask_BT)
            with _zeroed(model, layer, mask_BT, positions):
                logits["zero"] = logits_of(model, ids_BT, mask_BT)
            where_BT = _kl_positions(mask_BT, positions)
            n_positions += int(where_BT.sum())
            for name, sums in (("splice", spliced), ("zero", zeroed)):
                sums.kl += float(kl_per_position(logits["clean"], logits[name])[where_BT].sum())
            if positions == "all":
                targets_BT, pairs_BT = ids_BT[:, 1:], (mask_BT[:, 1:] * mask_BT[:, :-1]).bool()
                n_tokens += int(pairs_BT.sum())
                for name, sums in (("clean", clean), ("splice", spliced), ("zero", zeroed)):
                    sums.ce += float(_ce(logits[name][:, :-1], targets_BT)[pairs_BT].sum())
            advance(min(batch_size, len(texts) - start))
    ce = (lambda s: s.ce / n_tokens) if n_tokens else (lambda s: None)  # noqa: E731
    return LossRecovered(positions, len(texts), n_tokens, n_positions, ce(clean), ce(spliced), ce(zeroed),
                         spliced.kl / max(n_positions, 1), zeroed.kl / max(n_positions, 1))


def right_padded(tokenizer: Any, texts: Sequence[str], max_tokens: int,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids_BT, mask_BT) of `texts`, each cut to `max_tokens`, padded on the right."""
    rows = [tokenizer(t, add_special_tokens=False)["input_ids"][:max_tokens] for t in texts]
    if any(not r for r in rows):
        raise UserError("a text for the loss-recovered measure tokenizes to nothing")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids_BT, mask_BT, _ = pad_token_ids(rows, pad, device)
    return ids_BT, mask_BT


@torch.no_grad()
def logits_of(model: nn.Module, ids_BT: torch.Tensor, mask_BT: torch.Tensor) -> torch.Tensor:
    """Float logits of one forward pass, no cache."""
    return model(input_ids=ids_BT, attention_mask=mask_BT, use_cache=False).logits.float()


def _last_real_BT(mask_BT: torch.Tensor) -> torch.Tensor:
    """The last real token of each right-padded row."""
    last_B = mask_BT.sum(1) - 1
    return torch.zeros_like(mask_BT, dtype=torch.bool).scatter_(1, last_B.unsqueeze(1), True)


def _kl_positions(mask_BT: torch.Tensor, positions: str) -> torch.Tensor:
    return mask_BT.bool() if positions == "all" else _last_real_BT(mask_BT)


@contextmanager
def _zeroed(model: nn.Module, layer: int, mask_BT: torch.Tensor, positions: str) -> Iterator[None]:
    """Decoder layer `layer`'s output set to zero at the measured positions (pads untouched)."""
    keep_BT1 = ~_kl_positions(mask_BT, positions).unsqueeze(-1)

    def hook(_module, _args, output):
        h_BTD = layer_hidden(output)
        return with_layer_hidden(output, h_BTD * keep_BT1.to(h_BTD.dtype))

    handle = decoder_layers(model)[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _ce(logits_BTV: torch.Tensor, targets_BT: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(logits_BTV.transpose(1, 2), targets_BT, reduction="none")


def kl_per_position(clean_BTV: torch.Tensor, other_BTV: torch.Tensor) -> torch.Tensor:
    """KL(clean || other) per position."""
    p_log = clean_BTV.log_softmax(-1)
    return (p_log.exp() * (p_log - other_BTV.log_softmax(-1))).sum(-1)
