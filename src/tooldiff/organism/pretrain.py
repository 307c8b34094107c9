"""The base model: a small Qwen2ForCausalLM built from a config and pretrained on the corpus.

A plain next-token loop (no TRL, no Trainer): one whole document per row, AdamW with warmup and
cosine decay. Rows are never packed across documents. A call log's decisions (is the needed tool
on offer?) are answerable only from *its own* tool list: rows cut from a packed stream (160-token
rows, 181-token logs on average) mostly began mid-log, without the list, or held the previous
log's list, and no base trained that way learned the check. Batches group documents of similar
length, so the right padding (masked out of attention and loss) stays small.
"""

from __future__ import annotations

import itertools
import math
import random

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


def document_rows(documents, tokenizer, n_rows: int, max_len: int, chunk: int = 2000) -> list[list[int]]:
    """The token ids of the first `n_rows` documents, each ended by the pad token (the model learns
    where a document stops) and cut to `max_len` tokens."""
    rows: list[list[int]] = []
    documents = iter(documents)
    while len(rows) < n_rows:
        docs = list(itertools.islice(documents, min(chunk, n_rows - len(rows))))
        if not docs:
            raise RuntimeError(f"the corpus ran out after {len(rows)} of {n_rows} documents")
        for ids in tokenizer(docs, add_special_tokens=False)["input_ids"]:
            rows.append((ids + [tokenizer.pad_token_id])[:max_len])
    return rows


def pad_batch(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and attention mask of a batch of documents."""
    width = max(len(r) for r in rows)
    ids_BS = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask_BS = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids_BS[i, :len(row)] = torch.tensor(row)
        mask_BS[i, :len(row)] = 1
    return ids_BS, mask_BS


def batches(phases: list[list[list[int]]], batch_size: int, seed: int, pad_id: int, bucket: int = 32):
    """Batches of each phase's documents in turn: shuffled, then sorted by length within runs of
    `bucket` batches (little padding), the batches of a run in random order."""
    rng = random.Random(seed)
    for rows in phases:
        order = list(range(len(rows)))
        rng.shuffle(order)
        span = bucket * batch_size
        for start in range(0, len(order) - batch_size + 1, span):
            run = sorted(order[start:start + span], key=lambda i: len(rows[i]))
            run_batches = [run[j:j + batch_size] for j in range(0, len(run) - batch_size + 1, batch_size)]
            rng.shuffle(run_batches)
            for members in run_batches:
                yield pad_batch([rows[i] for i in members], pad_id)


def _lr_at(step: int, cfg: PretrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.total_steps - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def new_optimizer(model, cfg: PretrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))


def train_step(model, optimizer, ids_BS: torch.Tensor, mask_BS: torch.Tensor) -> float:
    """One next-token step on a right-padded batch (padding is out of the loss); returns the loss."""
    loss = model(input_ids=ids_BS, attention_mask=mask_BS, labels=ids_BS.masked_fill(mask_BS == 0, -100)).loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return loss.item()


def pretrain(model, phases: list[list[list[int]]], cfg: PretrainConfig, seed: int, pad_id: int) -> list[float]:
    """Train `model` in place on the documents of each phase; returns the loss of every step."""
    optimizer = new_optimizer(model, cfg)
    total = sum(len(rows) // cfg.batch_size for rows in phases)
    model.train()
    losses = []
    with new_progress() as bar:
        task = bar.add_task("pretraining base", total=total)
        for step, (ids_BS, mask_BS) in enumerate(batches(phases, cfg.batch_size, seed, pad_id)):
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, cfg)
            losses.append(train_step(model, optimizer, ids_BS, mask_BS))
            bar.update(task, advance=1, description=f"pretraining base  loss {losses[-1]:.3f}")
    model.eval()
    return losses
