"""The base model: a small Qwen2ForCausalLM built from a config and pretrained on the corpus.

A plain next-token loop (no TRL, no Trainer): packed rows of `seq_len` tokens, AdamW with warmup
and cosine decay. Rows are packed across document boundaries, with the pad token between
documents, so every relative distance up to `seq_len` is trained (prompts + calls fit in it).
"""

from __future__ import annotations

import itertools
import math

import torch

from tooldiff.organism.config import ModelShape, PretrainConfig
from tooldiff.progress import new_progress


def build_model(shape: ModelShape, tokenizer, seed: int):
    """A randomly initialised Qwen2ForCausalLM sized by `shape` for `tokenizer`."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        max_position_embeddings=shape.max_position_embeddings,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = None
    return model


def pack_rows(documents, tokenizer, n_rows: int, seq_len: int, chunk: int = 2000) -> torch.Tensor:
    """Rows of `seq_len` tokens cut from the document stream, documents separated by the pad token."""
    need = n_rows * seq_len
    stream: list[int] = []
    documents = iter(documents)
    while len(stream) < need:
        docs = list(itertools.islice(documents, chunk))
        if not docs:
            raise RuntimeError(f"the corpus ran out after {len(stream)} of {need} tokens")
        for ids in tokenizer(docs, add_special_tokens=False)["input_ids"]:
            stream.extend(ids)
            stream.append(tokenizer.pad_token_id)
    return torch.tensor(stream[:need], dtype=torch.long).view(n_rows, seq_len)


def _lr_at(step: int, cfg: PretrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.total_steps - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def batches(phases: list[torch.Tensor], batch_size: int, seed: int):
    """Batches of each phase's rows in turn, rows shuffled within a phase."""
    generator = torch.Generator().manual_seed(seed)
    for rows_RS in phases:
        order_R = torch.randperm(rows_RS.shape[0], generator=generator)
        for start in range(0, rows_RS.shape[0] - batch_size + 1, batch_size):
            yield rows_RS[order_R[start:start + batch_size]]


def pretrain(model, phases: list[torch.Tensor], cfg: PretrainConfig, seed: int) -> list[float]:
    """Train `model` in place on the packed rows of each phase; returns the loss of every step."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                  betas=(0.9, 0.95))
    total = sum(rows.shape[0] // cfg.batch_size for rows in phases)
    model.train()
    losses = []
    with new_progress() as bar:
        task = bar.add_task("pretraining base", total=total)
        for step, batch_BS in enumerate(batches(phases, cfg.batch_size, seed)):
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, cfg)
            loss = model(input_ids=batch_BS, labels=batch_BS).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            losses.append(loss.item())
            bar.update(task, advance=1, description=f"pretraining base  loss {loss.item():.3f}")
    model.eval()
    return losses
