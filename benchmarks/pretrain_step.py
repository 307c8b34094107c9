"""What a pretraining step of the default base costs, against the levers one would try to make the
organism build faster or bigger (not run in CI).

    .venv/bin/python benchmarks/pretrain_step.py [--organism DIR] [--threads 2] [--steps 12]
        [--rounds 2] [--compile]

Every variant trains a fresh model on the same batches of one-tool call logs (the drill's
documents, most of the base's steps), round-robin over `--rounds` so that a busy spell of the
machine hits all of them alike, and prints seconds per step and the ratio to the preset's own
step. `--organism` reuses a build's data and tokenizer; without it the default preset's data and
tokenizer stages are built into a temporary directory (about 15 s).

The build-time target (issue 3: 480 s on 2 cores) needs fewer FLOPs or fewer steps: this script
shows which per-step levers do not deliver either (docs/organism.md, "Where the build time goes").
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

VARIANTS = {  # name: (ModelShape overrides, bf16 autocast, attention implementation, threads: None = --threads)
    "preset (fp32, sdpa)": ({}, False, "sdpa", None),
    "bf16 autocast": ({}, True, "sdpa", None),
    "eager attention": ({}, False, "eager", None),
    "1 thread": ({}, False, "sdpa", 1),
    "3 layers": ({"num_hidden_layers": 3}, False, "sdpa", None),
    "4 layers": ({"num_hidden_layers": 4}, False, "sdpa", None),
    "hidden 128, 4 heads": ({"hidden_size": 128, "num_attention_heads": 4, "num_key_value_heads": 4,
                             "intermediate_size": 384}, False, "sdpa", None),  # the 0.62M preset before 2026-11-23
}


def organism_inputs(organism: Path | None, tmp: Path):
    """Tokenizer and pretrain records of a build, or of the default preset's first two stages."""
    from tooldiff.hf import load_tokenizer
    from tooldiff.organism.build import STAGE_FUNCS, Build
    from tooldiff.organism.config import get_preset
    from tooldiff.organism.store import read_jsonl

    if organism is None:
        organism = tmp
        b = Build(out=tmp, cfg=get_preset("default"), seed=0, variant="full", build_hash="benchmark")
        STAGE_FUNCS["data"](b)
        STAGE_FUNCS["tokenizer"](b)
    return load_tokenizer(organism / "tokenizer"), read_jsonl(organism / "data" / "pretrain.jsonl")


def drill_batches(tokenizer, records, n: int):
    from tooldiff.organism.build import pretraining_plan
    from tooldiff.organism.config import get_preset
    from tooldiff.organism.corpus import iter_documents
    from tooldiff.organism.pretrain import batches, document_rows

    cfg = get_preset("default")
    mix, stream, _ = pretraining_plan(cfg)[0]
    rows = document_rows(iter_documents(records, mix, 0, stream=stream), tokenizer, n * cfg.pretrain.batch_size,
                         cfg.pretrain.max_doc_len)
    return list(batches([rows], cfg.pretrain.batch_size, 0, tokenizer.pad_token_id))[:n]


def new_trainee(tokenizer, shape_overrides: dict, attention: str, compiled: bool):
    from tooldiff.organism.config import get_preset
    from tooldiff.organism.pretrain import build_model, new_optimizer

    cfg = get_preset("default")
    model = build_model(replace(cfg.model, **shape_overrides), tokenizer, seed=0)
    model.set_attn_implementation(attention)
    model.train()
    if compiled:
        model.forward = torch.compile(model.forward, dynamic=True)
    return model, new_optimizer(model, cfg.pretrain)


def time_steps(model, optimizer, batch_list, bf16: bool, threads: int) -> float:
    from tooldiff.organism.pretrain import train_step
    from tooldiff.threads import torch_threads

    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with torch_threads(threads), autocast:
        start = time.perf_counter()
        for ids_BS, mask_BS in batch_list:
            train_step(model, optimizer, ids_BS, mask_BS)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--organism", type=Path, default=None, help="a build whose data and tokenizer to use")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=12, help="timed steps per variant and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="add torch.compile (inductor; compiles for ~1 min)")
    args = parser.parse_args()

    variants = dict(VARIANTS)
    if args.compile:
        variants["torch.compile"] = ({}, False, "sdpa", None)
    with tempfile.TemporaryDirectory(prefix="tooldiff-step-") as tmp:
        tokenizer, records = organism_inputs(args.organism, Path(tmp))
    warmup, timed = 3, args.steps
    batch_list = drill_batches(tokenizer, records, warmup + timed)
    trainees = {}
    for name, (shape, bf16, attention, threads) in variants.items():
        model, optimizer = new_trainee(tokenizer, shape, attention, compiled=(name == "torch.compile"))
        threads = threads or args.threads
        warm = time_steps(model, optimizer, batch_list[:warmup], bf16, threads)
        trainees[name] = (model, optimizer, bf16, threads, warm)
    seconds = {name: 0.0 for name in variants}
    for _ in range(args.rounds):
        for name, (model, optimizer, bf16, threads, _) in trainees.items():
            seconds[name] += time_steps(model, optimizer, batch_list[warmup:], bf16, threads)

    width = sum(ids.shape[1] for ids, _ in batch_list[warmup:]) / timed
    batch = batch_list[0][0].shape[0]
    print(f"\n{timed} steps x {args.rounds} rounds per variant, batch {batch} one-tool call logs "
          f"(mean padded width {width:.0f} tokens), {args.threads} threads unless named")
    base = seconds["preset (fp32, sdpa)"]
    for name, (model, _, _, threads, warm) in trainees.items():
        params = sum(p.numel() for p in model.parameters())
        per_step = seconds[name] / (timed * args.rounds)
        print(f"  {name:22s} {params / 1e6:5.2f}M params  {per_step:.3f} s/step  x{seconds[name] / base:.2f}"
              f"  (warm-up {warm:.1f} s, {threads} thread{'s' if threads > 1 else ''})")


if __name__ == "__main__":
    main()
