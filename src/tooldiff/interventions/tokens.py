"""A latent at every token, and what its decoder writes: the two readings a person looks at.

The ranking reads latents at the decision position only. To see *where* a latent fires, the
dashboard's examples and the server's live panel read it at every prompt token, with the reader
steering uses (`readout.latent_reader`): the value shown at a token is the f that `steer`
scales and `ablate` removes there.

- `layer_hiddens`: the output of decoder layer L at every token of each prompt (right padding:
  a causal model's real tokens never see the pads after them, so each row equals the unpadded
  prompt's), stopping right after layer L;
- `read_tokens`: chosen latents read from one model's activations alone, row by row;
- `logit_lens`: decoder vectors through the model's final norm and unembedding, the tokens
  each promotes and suppresses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tooldiff.activations.harvest import layer_output
from tooldiff.hf import final_norm
from tooldiff.interventions.readout import latent_reader


@torch.no_grad()
def layer_hiddens(model: nn.Module, layer: int, token_ids: list[list[int]], pad_id: int,
                  batch_size: int = 512) -> list[torch.Tensor]:
    """h_TD per prompt (float32, CPU): decoder layer `layer`'s output at every token."""
    device = next(model.parameters()).device
    order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))  # little padding per batch
    out: list[torch.Tensor | None] = [None] * len(token_ids)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        lengths = torch.tensor([len(token_ids[i]) for i in rows])
        ids_BT = torch.full((len(rows), int(lengths.max())), pad_id, dtype=torch.long)
        for r, i in enumerate(rows):
            ids_BT[r, :len(token_ids[i])] = torch.tensor(token_ids[i])
        mask_BT = (torch.arange(ids_BT.shape[1])[None] < lengths[:, None]).long()
        h_BTD = layer_output(model, layer, ids_BT.to(device), mask_BT.to(device)).float().cpu()
        for r, i in enumerate(rows):
            out[i] = h_BTD[r, :len(token_ids[i])].clone()
    return out  # type: ignore[return-value]


@torch.no_grad()
def read_tokens(crosscoder, model_index: int, h_ND: torch.Tensor, latents: list[int],
                chunk: int = 16384) -> torch.Tensor:
    """f_NS: `latents` read from model `model_index`'s activations alone, at every row of h_ND; 0 for
    a latent the model has no encoder for (the other model's exclusive latents)."""
    span = crosscoder.model_latents(model_index)
    owned = [s for s, i in enumerate(latents) if span.start <= i < span.stop]
    f_NS = torch.zeros(h_ND.shape[0], len(latents))
    if owned:
        read = latent_reader(crosscoder, model_index, [latents[s] for s in owned])
        device, columns = crosscoder.b_enc_L.device, torch.tensor(owned)
        for start in range(0, h_ND.shape[0], chunk):
            f_NS[start:start + chunk, columns] = read(h_ND[start:start + chunk].to(device)).float().cpu()
    return f_NS


@torch.no_grad()
def read_prompt(model: nn.Module, crosscoder, model_index: int, layer: int, token_ids: list[int],
                latents: list[int]) -> torch.Tensor:
    """f_TS of `latents` at every token of one prompt, in the served model."""
    h_TD = layer_hiddens(model, layer, [token_ids], pad_id=0)[0]
    return read_tokens(crosscoder, model_index, h_TD, latents)


@dataclass
class LogitLens:
    """Directions through the final norm and unembedding: per direction, the top and bottom
    tokens by logit, and every logit."""

    promoted: list[list[tuple[int, float]]]
    suppressed: list[list[tuple[int, float]]]
    logits_SV: torch.Tensor


@torch.no_grad()
def logit_lens(model: nn.Module, directions_SD: torch.Tensor, k: int = 10) -> LogitLens:
    norm, unembed = final_norm(model), model.get_output_embeddings()
    param = next(unembed.parameters())
    logits_SV = unembed(norm(directions_SD.to(param)[None]))[0].float().cpu()
    top, bottom = logits_SV.topk(k, dim=1), (-logits_SV).topk(k, dim=1)
    return LogitLens([list(zip(i, v)) for i, v in zip(top.indices.tolist(), top.values.tolist())],
                     [list(zip(i, [-x for x in v])) for i, v in zip(bottom.indices.tolist(), bottom.values.tolist())],
                     logits_SV)
