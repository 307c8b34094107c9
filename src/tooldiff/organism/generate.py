"""Greedy, batched generation for evaluating the organism (left padding, one pass per batch)."""

from __future__ import annotations

import torch

from tooldiff.hf import render_prompt
from tooldiff.progress import new_progress


@torch.no_grad()
def generate_greedy(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int = 64,
                    label: str = "generating") -> list[str]:
    """Greedy completions of already-rendered prompts, decoded without special tokens."""
    tokenizer.padding_side = "left"
    # Longest prompts first: batches hold similar lengths, so little padding is computed.
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    outputs: list[str] = [""] * len(prompts)
    with new_progress() as bar:
        task = bar.add_task(label, total=len(prompts))
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            batch = tokenizer([prompts[i] for i in index], return_tensors="pt", padding=True,
                              add_special_tokens=False)
            out_BT = model.generate(
                **batch, do_sample=False, max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
            )
            new_BT = out_BT[:, batch["input_ids"].shape[1]:]
            for i, text in zip(index, tokenizer.batch_decode(new_BT, skip_special_tokens=True)):
                outputs[i] = text
            bar.update(task, advance=len(index))
    return outputs


def generate_for_records(model, tokenizer, records: list[dict], max_new_tokens: int, batch_size: int = 64,
                         label: str = "generating") -> list[str]:
    """Greedy completions of prompt records, rendered with the tokenizer's chat template."""
    prompts = [render_prompt(tokenizer, r) for r in records]
    return generate_greedy(model, tokenizer, prompts, max_new_tokens, batch_size, label)
