"""The paper's scale on one GPU: harvest, crosscoder training and steering, as fractions of their limits.

    python benchmarks/gpu_paper_scale.py --out DIR [--scale paper|cpu] [--device cuda] [--only SECTION ...]

Every figure is measured side by side in one run and written to DIR/gpu_paper_scale.json and
DIR/gpu_paper_scale.md (also printed). `--scale paper` is the paper's study on an H200: a pair
built from the shipped configs/models/qwen2.5-3b (random init, bf16, no download), layer 13, 512 prompts of
about 512 tokens; crosscoders at 2 x 2048 -> D = 16384, k = 160 and D = 8192, k = 45, batch
1024; generation of 64 prompts x 128 new tokens. `--scale cpu` runs the same code on tiny shapes
in seconds (tests/test_benchmarks.py runs it, so the script cannot rot).

Sections (each in its own try: one failure does not cost the others):
- ceilings: the chip's bf16 and TF32 matmul rate (8192^3) and device-to-device copy bandwidth;
- harvest: tooldiff's harvest (decision positions, and every position) against a bare forward
  of both models through layer 13 (the decoder stack cut after it), tokens/s and peak memory;
- crosscoder: tooldiff's step at each encoder precision against the paper's dense masked step
  (fp32 as written, and under bf16 autocast), rows/s and peak memory; the encoder forward's
  achieved TFLOP/s against a bare matmul of the same shape (bf16 and TF32) and the 8192^3 rate;
  host-device syncs inside one step (CUDA's sync debug mode); a bf16-vs-fp32 quality check; a
  torch profile of one step; a one-pass sweep of 8 configurations against 1 (`train_sweep`);
- steering: batched greedy generation through the server's loop, plain vs `last_prompt`, `all`
  and per-row steering (benchmarks/steering_overhead.py's conditions).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch

from tooldiff import configs

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from dense_dfc import dense_masked_step, synthetic_harvest, trainer_step  # noqa: E402

TARGETS = {"harvest_ratio": 0.9, "crosscoder_ratio": 4.0, "encoder_fraction_bf16": 0.4, "steering_overhead": 0.05}


@dataclass(frozen=True)
class Scale:
    """The sizes of one run; `paper` is the issue's, `cpu` the same code in seconds."""

    model_overrides: dict
    layer: int
    n_prompts: int
    prompt_tokens: int
    harvest_batch: int
    d: int
    batch: int
    shapes: tuple  # (D, k) per crosscoder shape
    excl: float
    lam: float
    cc_rows: int  # rows of the synthetic harvest the timed trainer draws from
    steps: int  # timed crosscoder steps (after warm-up)
    sweep_D: int
    sweep_steps: int
    sweep_rows: int
    quality_rows: int
    quality_steps: int
    gen_prompts: int
    gen_prompt_tokens: int
    gen_tokens: int
    gen_repeats: int
    matmul_n: int
    copy_bytes: int


SCALES = {
    "paper": Scale(model_overrides={}, layer=13, n_prompts=512, prompt_tokens=512, harvest_batch=64, d=2048,
                   batch=1024, shapes=((16384, 160), (8192, 45)), excl=0.05, lam=1e-3, cc_rows=16384, steps=40, sweep_D=8192,
                   sweep_steps=300, sweep_rows=32768, quality_rows=32768, quality_steps=300, gen_prompts=64,
                   gen_prompt_tokens=64, gen_tokens=128, gen_repeats=5, matmul_n=8192, copy_bytes=2**32),
    "cpu": Scale(model_overrides={"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4,
                                  "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 4096},
                 layer=2, n_prompts=16, prompt_tokens=32, harvest_batch=8, d=64, batch=128,
                 shapes=((512, 16), (256, 8)), excl=0.05, lam=1e-3, cc_rows=1024, steps=3, sweep_D=256, sweep_steps=20,
                 sweep_rows=2048, quality_rows=2048, quality_steps=20, gen_prompts=4, gen_prompt_tokens=8,
                 gen_tokens=8, gen_repeats=1, matmul_n=256, copy_bytes=2**22),
}
WORDS = 4000  # word-level vocabulary of the benchmark tokenizer: one word, one token


# --- timing and memory --------------------------------------------------------------------------
class Device:
    def __init__(self, name: str):
        self.torch = torch.device(name)
        self.cuda = self.torch.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.torch)

    def reset_peak(self) -> None:
        """Start a peak-memory window; what is allocated now (the steering section's models, kept
        from the harvest) is the baseline that `peak_gb` does not count."""
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.torch)
            self.baseline = torch.cuda.memory_allocated(self.torch)

    def peak_gb(self) -> float | None:
        """Peak device memory of the window, above its baseline."""
        if not self.cuda:
            return None
        return (torch.cuda.max_memory_allocated(self.torch) - getattr(self, "baseline", 0)) / 1e9

    def time(self, fn: Callable[[], Any], repeats: int, warmup: int = 2) -> float:
        """Seconds per call of fn, after warm-up, with one synchronization at each end."""
        for _ in range(warmup):
            fn()
        self.sync()
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        self.sync()
        return (time.perf_counter() - start) / repeats


# --- ceilings ---------------------------------------------------------------------------------
def matmul_rate(dev: Device, m: int, k: int, n: int, dtype: torch.dtype, tf32: bool = False, repeats: int = 10) -> float:
    """TFLOP/s of an (m x k) @ (k x n) product on random data."""
    a = torch.randn(m, k, device=dev.torch, dtype=dtype)
    b = torch.randn(k, n, device=dev.torch, dtype=dtype)
    matmul = torch.backends.cuda.matmul
    previous = matmul.fp32_precision
    matmul.fp32_precision = "tf32" if tf32 else "ieee"
    try:
        seconds = dev.time(lambda: a @ b, repeats, warmup=3)
    finally:
        matmul.fp32_precision = previous
    return 2 * m * k * n / seconds / 1e12


def section_ceilings(sc: Scale, dev: Device) -> dict:
    n = sc.matmul_n
    out = {"matmul_shape": [n, n, n], "bf16_tflops": matmul_rate(dev, n, n, n, torch.bfloat16),
           "fp32_tflops": matmul_rate(dev, n, n, n, torch.float32)}
    if dev.cuda:
        out["tf32_tflops"] = matmul_rate(dev, n, n, n, torch.float32, tf32=True)
        src = torch.empty(sc.copy_bytes // 4, device=dev.torch)
        dst = torch.empty_like(src)
        seconds = dev.time(lambda: dst.copy_(src), 10)
        out["copy_tb_s"] = 2 * sc.copy_bytes / seconds / 1e12  # bytes read + bytes written
    return out


# --- the model pair -----------------------------------------------------------------------------
def build_tokenizer(directory: Path):
    """A word-level tokenizer (one word, one token) saved as the organism's tokenizers are."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<|endoftext|>": 0, **{f"w{i}": i + 1 for i in range(WORDS)}, "<unk>": WORDS + 1}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                   unk_token="<unk>")
    fast.save_pretrained(str(directory))
    return fast


def build_model(sc: Scale, dev: Device, seed: int):
    """tooldiff's shipped configs/models/qwen2.5-3b at random init, built directly on the device in bf16."""
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(str(configs.HOME / "models" / "qwen2.5-3b"))
    for key, value in sc.model_overrides.items():
        setattr(cfg, key, value)
    torch.manual_seed(seed)
    with dev.torch, _default_dtype(torch.bfloat16):
        model = AutoModelForCausalLM.from_config(cfg)
    return model.eval()


class _default_dtype:
    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype

    def __enter__(self):
        self.previous = torch.get_default_dtype()
        torch.set_default_dtype(self.dtype)

    def __exit__(self, *exc):
        torch.set_default_dtype(self.previous)


def write_prompts(path: Path, sc: Scale) -> int:
    """Generic-text records of about `prompt_tokens` tokens (lengths spread +-25 %); returns tokens."""
    gen = torch.Generator().manual_seed(0)
    total = 0
    with open(path, "w") as fh:
        for i in range(sc.n_prompts):
            n = int(sc.prompt_tokens * (0.75 + 0.5 * i / max(sc.n_prompts - 1, 1)))
            words = torch.randint(0, WORDS, (n,), generator=gen).tolist()
            fh.write(json.dumps({"id": f"p{i}", "text": " ".join(f"w{w}" for w in words), "kind": "generic"}) + "\n")
            total += n
    return total


# --- harvest ------------------------------------------------------------------------------------
def bare_forward(models, tokenizer, records: list[dict], sc: Scale, dev: Device) -> None:
    """Both models through decoder layer `layer` and nothing else: the stack cut after it."""
    from tooldiff.activations.harvest import pad_right
    from tooldiff.activations.records import tokenize_records

    prompts = sorted(tokenize_records(records, tokenizer, Path("bench")), key=lambda p: len(p.token_ids))
    cut = [m.model.layers for m in models]
    for m in models:
        m.model.layers = torch.nn.ModuleList(list(m.model.layers)[: sc.layer + 1])
    try:
        with torch.inference_mode():
            for start in range(0, len(prompts), sc.harvest_batch):
                ids, mask, _ = pad_right(prompts[start : start + sc.harvest_batch], tokenizer.pad_token_id, dev.torch)
                for m in models:
                    m.model(input_ids=ids, attention_mask=mask, use_cache=False)
        dev.sync()
    finally:
        for m, layers in zip(models, cut):
            m.model.layers = layers


def run_harvest(models, tokenizer, records: list[dict], data: Path, sc: Scale, dev: Device, positions: str) -> None:
    from tooldiff.activations.harvest import HarvestSettings, harvest_models

    out = Path(tempfile.mkdtemp(prefix="gpu-harvest-")) / "acts"
    settings = HarvestSettings(layer=sc.layer, positions=positions, batch_size=sc.harvest_batch, dtype="float32",
                               device=str(dev.torch), model_dtype="bfloat16")
    harvest_models(models, tokenizer, ("bench-rl", "bench-base"), records, data, out, settings)
    dev.sync()
    subprocess.run(["rm", "-rf", str(out.parent)], check=False)


def writer_only(sc: Scale, n_rows: int) -> float:
    """Seconds the shard writer needs for the every-position harvest's rows alone (no model):
    what bounds that harvest when it is slower than the forward."""
    from tooldiff.activations.manifest import Manifest
    from tooldiff.activations.shards import ShardWriter
    from tooldiff.activations.welford import Welford

    out = Path(tempfile.mkdtemp(prefix="gpu-writer-"))
    rows = sc.harvest_batch * sc.prompt_tokens
    manifest = Manifest(harvest_id="writer-bench", models=["a", "b"], layer=sc.layer, positions="all", d_model=sc.d,
                        n_layers=sc.layer + 1, dtype="float32", model_dtype="bfloat16", data_file="-",
                        data_sha256="-", n_prompts=n_rows // rows, shard_rows=65536, kinds=["generic"])
    acts = torch.randn(rows, 2, sc.d)
    meta = {f: torch.zeros(rows, dtype=torch.int64) for f in ("sample", "token", "decision", "label", "kind")}
    start = time.perf_counter()
    writer = ShardWriter(out, manifest, Welford(2, sc.d), torch.float32)
    for b in range(manifest.n_prompts):
        writer.add(acts, **meta)
        writer.end_batch(b + 1)
    writer.finish()
    seconds = time.perf_counter() - start
    subprocess.run(["rm", "-rf", str(out)], check=False)
    return seconds


def section_harvest(sc: Scale, dev: Device, state: dict) -> dict:
    from tooldiff.activations.records import read_records

    tmp = Path(tempfile.mkdtemp(prefix="gpu-bench-"))
    tokenizer = build_tokenizer(tmp / "tok")
    n_tokens = write_prompts(tmp / "data.jsonl", sc)
    records = read_records(tmp / "data.jsonl")
    t0 = time.perf_counter()
    models = (build_model(sc, dev, 1), build_model(sc, dev, 2))
    state.update(models=models, tokenizer=tokenizer)
    out: dict = {"prompts": sc.n_prompts, "tokens": n_tokens, "layer": sc.layer, "batch": sc.harvest_batch,
                 "model_build_s": time.perf_counter() - t0,
                 "params_per_model": sum(p.numel() for p in models[0].parameters())}
    runs = {"bare_forward": lambda: bare_forward(models, tokenizer, records, sc, dev),
            "harvest_decision": lambda: run_harvest(models, tokenizer, records, tmp / "data.jsonl", sc, dev, "decision"),
            "harvest_all": lambda: run_harvest(models, tokenizer, records, tmp / "data.jsonl", sc, dev, "all")}
    best = {name: math.inf for name in runs}
    peak = {}
    for _ in range(2):  # interleaved; the best of two (a first pass also warms kernels and the allocator)
        for name, fn in runs.items():
            dev.reset_peak()
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
            peak[name] = dev.peak_gb()
    for name in runs:
        out[name] = {"seconds": best[name], "tokens_per_s": n_tokens / best[name], "peak_gb": peak[name]}
    bare = out["bare_forward"]["tokens_per_s"]
    out["ratio_decision"] = out["harvest_decision"]["tokens_per_s"] / bare
    out["ratio_all"] = out["harvest_all"]["tokens_per_s"] / bare
    out["rows_all_gb"] = n_tokens * 2 * sc.d * 4 / 1e9  # what the every-position harvest writes (float32)
    out["writer_only_s"] = writer_only(sc, n_tokens)
    out["writers"] = __import__("tooldiff.activations.shards", fromlist=["WRITERS"]).WRITERS
    return out


# --- crosscoder ---------------------------------------------------------------------------------
def encoder_flops(D: int, d: int, batch: int, excl: float, n_configs: int = 1) -> float:
    """Useful FLOPs of the dense encoder forward: each model over its own slice of latents."""
    per_model = D - int(round(excl * D))
    return 2 * batch * d * 2 * per_model * n_configs


def time_steps(step: Callable, x: torch.Tensor | None, dev: Device, steps: int, batch: int) -> dict:
    dev.reset_peak()
    seconds = dev.time((lambda: step(x)) if x is not None else step, steps, warmup=5)
    return {"rows_per_s": batch / seconds, "ms_per_step": 1e3 * seconds, "peak_gb": dev.peak_gb()}


def count_syncs(fn: Callable[[], Any], dev: Device) -> int | None:
    """Host-device synchronizations inside one call (CUDA's sync debug mode warns at each)."""
    if not dev.cuda:
        return None
    fn()
    dev.sync()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    dev.sync()
    return sum("synchroniz" in str(w.message).lower() for w in caught)


# (name, TrainConfig fields) of tooldiff's step; the last is what `auto` picks on that device.
VARIANTS = {"cuda": [("fp32 sparse", {"precision": "fp32", "kernels": "sparse", "cuda_graph": False}),
                     ("bf16 sparse", {"precision": "bf16", "kernels": "sparse", "cuda_graph": False}),
                     ("bf16 dense", {"precision": "bf16", "kernels": "dense", "cuda_graph": False}),
                     ("tf32 dense graph", {"precision": "tf32", "kernels": "dense", "cuda_graph": True}),
                     ("bf16 dense graph", {"precision": "bf16", "kernels": "dense", "cuda_graph": True})],
            "cpu": [("fp32 sparse", {"precision": "fp32", "kernels": "sparse", "cuda_graph": False})]}


def section_crosscoder(sc: Scale, dev: Device, out_dir: Path) -> dict:
    acts = synthetic_harvest(sc.d, sc.cc_rows)
    out: dict = {"d_per_model": sc.d, "batch": sc.batch, "excl_per_side": sc.excl, "lambda": sc.lam, "shapes": []}
    variants = VARIANTS["cuda" if dev.cuda else "cpu"]
    for D, k in sc.shapes:
        x = torch.randn(sc.batch, 2, sc.d, device=dev.torch)
        row: dict = {"D": D, "k": k, "ours": {}, "dense_masked": {}}
        for name, train in variants:
            step = trainer_step(acts, D, k, sc.excl, sc.lam, sc.batch, str(dev.torch), **train)
            row["ours"][name] = time_steps(step, None, dev, sc.steps, sc.batch)
            row["ours"][name]["syncs_per_step"] = count_syncs(step, dev)
            stack = step.trainer.stacks[0]  # type: ignore[attr-defined]
            row["ours"][name]["encoder"] = encoder_rate(stack, x, dev, sc, D)
            graphed = step.trainer.steps[0]  # type: ignore[attr-defined]
            row["ours"][name]["graph"] = ("captured" if getattr(graphed, "captured", False)
                                          else getattr(graphed, "failure", None) or "off")
            del step, stack, graphed
        for p in (["fp32", "bf16"] if dev.cuda else ["fp32"]):
            step = dense_masked_step(sc.d, D, k, sc.excl, sc.lam, str(dev.torch), p)
            row["dense_masked"][p] = time_steps(step, x, dev, max(3, sc.steps // 2), sc.batch)
            del step
        best = variants[-1][0]
        row["default"] = best
        row["ratio_vs_dense_fp32"] = row["ours"][best]["rows_per_s"] / row["dense_masked"]["fp32"]["rows_per_s"]
        if dev.cuda:
            row["ratio_vs_dense_bf16"] = row["ours"][best]["rows_per_s"] / row["dense_masked"]["bf16"]["rows_per_s"]
        row["bare_matmul"] = same_shape_matmul(sc, dev, D)
        out["shapes"].append(row)
    D, k = sc.shapes[0]
    out["graph_check"] = graph_check(acts, sc, dev, D, k)
    out["profile_file"] = profile_step(acts, sc, dev, D, k, out_dir)
    return out


def graph_check(acts: Path, sc: Scale, dev: Device, D: int, k: int) -> dict | None:
    """The same 12 steps eager and replayed from a CUDA graph: the weights must agree."""
    if not dev.cuda:
        return None
    weights = []
    for graph in (False, True):
        step = trainer_step(acts, D, k, sc.excl, sc.lam, sc.batch, str(dev.torch), cuda_graph=graph)
        for _ in range(12):
            step()
        weights.append([p.detach().clone() for p in step.trainer.stacks[0].parameters()])  # type: ignore[attr-defined]
    diffs = [float((a - b).abs().max()) for a, b in zip(*weights)]
    scale = max(float(a.abs().max()) for a in weights[0])
    return {"steps": 12, "max_abs_diff": max(diffs), "max_abs_weight": scale, "bitwise_equal": max(diffs) == 0.0}


def encoder_rate(stack, x_BMD: torch.Tensor, dev: Device, sc: Scale, D: int) -> dict:
    with torch.no_grad():
        seconds = dev.time(lambda: stack.preactivation(x_BMD), max(5, sc.steps), warmup=3)
    tflops = encoder_flops(D, sc.d, sc.batch, sc.excl, stack.n_configs) / seconds / 1e12
    return {"ms": 1e3 * seconds, "tflops": tflops}


def same_shape_matmul(sc: Scale, dev: Device, D: int) -> dict:
    """A bare (batch x 2d) @ (2d x D) product, the encoder's shape, in bf16 and TF32."""
    out = {"bf16_tflops": matmul_rate(dev, sc.batch, 2 * sc.d, D, torch.bfloat16, repeats=max(5, sc.steps))}
    if dev.cuda:
        out["tf32_tflops"] = matmul_rate(dev, sc.batch, 2 * sc.d, D, torch.float32, tf32=True, repeats=max(5, sc.steps))
    return out


def profile_step(acts: Path, sc: Scale, dev: Device, D: int, k: int, out_dir: Path) -> str:
    """The torch profiler's table (top ops by device time) for 5 eager steps with the default
    precision and kernels (a graph replay would hide the kernels inside it)."""
    from torch.profiler import ProfilerActivity, profile

    step = trainer_step(acts, D, k, sc.excl, sc.lam, sc.batch, str(dev.torch), cuda_graph=False)
    for _ in range(3):
        step()
    dev.sync()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(5):
            step()
        dev.sync()
    key = "self_device_time_total" if dev.cuda else "self_cpu_time_total"
    path = out_dir / "profile_crosscoder_step.txt"
    path.write_text(prof.key_averages().table(sort_by=key, row_limit=30, max_name_column_width=60))
    return path.name


def section_quality(sc: Scale, dev: Device) -> dict:
    """Does reduced precision train as well? `train_sweep` on the same planted data at each
    compute setting; FVE on its held-out rows (metrics.json)."""
    from tooldiff.activations.synthetic import planted_activations, write_harvest
    from tooldiff.crosscoder import train_sweep
    from tooldiff.crosscoder.config import parse_sweep

    D, k = sc.shapes[-1]
    tmp = Path(tempfile.mkdtemp(prefix="gpu-quality-"))
    write_harvest(tmp / "acts", planted_activations(sc.quality_rows, sc.d, n_shared=min(D // 2, 1024),
                                                    n_excl=min(D // 16, 128), active=k // 2))
    out: dict = {"D": D, "k": k, "rows": sc.quality_rows, "steps": sc.quality_steps, "fve": {}}
    for name, train in VARIANTS["cuda" if dev.cuda else "cpu"]:
        sweep = parse_sweep({"train": {"batch_size": sc.batch, "eval_rows": sc.quality_rows // 8, **train},
                             "crosscoder": [{"name": "q", "dict_size": D, "k": k, "excl_a": sc.excl, "excl_b": sc.excl,
                                             "lr": 1e-3, "steps": sc.quality_steps}]})
        metrics = train_sweep(tmp / "acts", sweep, tmp / name.replace(" ", "-"), str(dev.torch))["q"]
        out["fve"][name] = metrics["fve"]
    subprocess.run(["rm", "-rf", str(tmp)], check=False)
    return out


def section_sweep(sc: Scale, dev: Device) -> dict:
    """`train_sweep` end to end (load, train, checkpoints, metrics, plots): 8 configurations in one pass vs 1."""
    from tooldiff.activations.synthetic import planted_activations, write_harvest
    from tooldiff.crosscoder import train_sweep
    from tooldiff.crosscoder.config import parse_sweep

    tmp = Path(tempfile.mkdtemp(prefix="gpu-sweep-"))
    write_harvest(tmp / "acts", planted_activations(sc.sweep_rows, sc.d, n_shared=200, n_excl=20, active=8))
    grid = [{"k": k, "lambda_excl": lam, "seed": s} for s in range(2) for k in (45, 160) for lam in (0.0, 1e-3)]
    grid = [{**g, "k": min(g["k"], sc.sweep_D // 4)} for g in grid]

    def configs(n: int) -> list[dict]:
        return [{"name": f"c{i}", "dict_size": sc.sweep_D, "excl_a": sc.excl, "excl_b": sc.excl,
                 "steps": sc.sweep_steps, **grid[i]} for i in range(n)]

    out: dict = {"D": sc.sweep_D, "steps": sc.sweep_steps, "batch": sc.batch, "rows": sc.sweep_rows}
    for n in (1, 8):
        sweep = parse_sweep({"train": {"batch_size": sc.batch, "checkpoint_every": 10 * sc.sweep_steps,
                                       "eval_rows": min(4096, sc.sweep_rows // 8)}, "crosscoder": configs(n)})
        dev.reset_peak()
        start = time.perf_counter()
        train_sweep(tmp / "acts", sweep, tmp / f"out{n}", str(dev.torch))
        dev.sync()
        out[f"configs_{n}"] = {"seconds": time.perf_counter() - start, "peak_gb": dev.peak_gb()}
    out["ratio_8_vs_1"] = out["configs_8"]["seconds"] / out["configs_1"]["seconds"]
    subprocess.run(["rm", "-rf", str(tmp)], check=False)
    return out


# --- steering -----------------------------------------------------------------------------------
def section_steering(sc: Scale, dev: Device, state: dict) -> dict:
    """Tokens/s of the shared generation loop with steering against without (same batch, interleaved)."""
    from steering_overhead import IgnoreEos, conditions

    from tooldiff.interventions import generate_completions

    model, tokenizer = state["models"][0], state["tokenizer"]
    model.generation_config.eos_token_id = None
    tokenizer = IgnoreEos(tokenizer)
    gen = torch.Generator().manual_seed(1)
    prompts = [" ".join(f"w{w}" for w in torch.randint(0, WORDS, (sc.gen_prompt_tokens,), generator=gen).tolist())
               for _ in range(sc.gen_prompts)]
    conds = conditions(model, len(prompts), sc.layer)

    def run(interventions, new_tokens: int) -> tuple[int, float]:
        start = time.perf_counter()
        done = generate_completions(model, tokenizer, prompts, interventions=interventions, max_new_tokens=new_tokens,
                                    batch_size=len(prompts), progress=False)
        dev.sync()
        return sum(len(c.token_ids) for c in done), time.perf_counter() - start

    conds["noop_hooks"] = [{**conds["last_prompt"][0], "dose": 0.0}]  # hooks in place, edit of zero size
    for interventions in conds.values():  # warm-up
        run(interventions, 4)
    per_repeat: dict[str, list[float]] = {name: [] for name in conds}
    totals = {name: [0, 0.0] for name in conds}
    order, rng = list(conds), random.Random(0)
    dev.reset_peak()
    for _ in range(sc.gen_repeats):
        rng.shuffle(order)  # interleaved, in a fresh order each repeat
        for name in order:
            n, s = run(conds[name], sc.gen_tokens)
            totals[name][0] += n
            totals[name][1] += s
            per_repeat[name].append(n / s)
    out: dict = {"prompts": sc.gen_prompts, "prompt_tokens": sc.gen_prompt_tokens, "new_tokens": sc.gen_tokens,
                 "repeats": sc.gen_repeats, "layer": sc.layer, "peak_gb": dev.peak_gb(), "conditions": {}}
    plain = totals["plain"][0] / totals["plain"][1]
    for name, (n, s) in totals.items():
        paired = [r / q for r, q in zip(per_repeat[name], per_repeat["plain"])]
        out["conditions"][name] = {"tokens_per_s": n / s, "overhead": 1 - (n / s) / plain,
                                   "per_repeat_tokens_per_s": per_repeat[name],
                                   "paired_overhead_median": 1 - statistics.median(paired)}
    return out


# --- report -------------------------------------------------------------------------------------
@dataclass
class Run:
    scale: str
    device: str
    env: dict
    sections: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)


def environment(dev: Device) -> dict:
    import transformers

    commit = os.environ.get("TOOLDIFF_COMMIT") or _git("rev-parse", "--short", "HEAD")
    return {"date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"), "commit": commit,
            "gpu": torch.cuda.get_device_name(dev.torch) if dev.cuda else None, "cpu": platform.processor(),
            "torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version(),
            "cuda": torch.version.cuda}


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def fmt(v: Any, spec: str = ".3g") -> str:
    return "–" if v is None else format(v, spec)


def _md_ceilings(c: dict, s: dict) -> list[str]:
    lines: list[str] = []
    lines += ["## Ceilings", "", f"- bf16 matmul {c['matmul_shape'][0]}³: **{fmt(c['bf16_tflops'], '.0f')} TFLOP/s**; "
              f"TF32 {fmt(c.get('tf32_tflops'), '.0f')}; fp32 {fmt(c['fp32_tflops'], '.1f')}; device copy "
              f"{fmt(c.get('copy_tb_s'), '.2f')} TB/s (read + write)", ""]
    return lines


def _md_harvest(h: dict, s: dict) -> list[str]:
    lines: list[str] = []
    lines += ["## Harvest (both models, layer %d, %d prompts, %d tokens, batch %d)" % (
        h["layer"], h["prompts"], h["tokens"], h["batch"]), "",
        "| run | tokens/s | seconds | peak GB | ratio to bare |", "|---|---:|---:|---:|---:|"]
    for name, ratio in (("bare_forward", 1.0), ("harvest_decision", h["ratio_decision"]),
                        ("harvest_all", h["ratio_all"])):
        r = h[name]
        lines.append(f"| {name} | {r['tokens_per_s']:,.0f} | {r['seconds']:.2f} | {fmt(r['peak_gb'], '.1f')} | "
                     f"{ratio:.2f} |")
    lines += ["", f"Target ≥ {TARGETS['harvest_ratio']}× of the bare forward. The every-position harvest writes "
              f"{h['rows_all_gb']:.1f} GB of float32 rows; the shard writer ({h.get('writers')} threads) alone "
              f"takes {fmt(h.get('writer_only_s'), '.2f')} s for as many rows.", ""]
    return lines


def _md_crosscoder(cc: dict, s: dict) -> list[str]:
    lines: list[str] = []
    lines += [f"## Crosscoder training step (2 × {cc['d_per_model']} → D, batch {cc['batch']}, DFC "
              f"{cc['excl_per_side']:.0%} + {cc['excl_per_side']:.0%} exclusive, λ {cc['lambda']:g})", "",
              "| D | k | implementation | compute | rows/s | ms/step | peak GB | syncs/step | encoder TFLOP/s | graph |",
              "|---:|---:|---|---|---:|---:|---:|---:|---:|---|"]
    for row in cc["shapes"]:
        for p, r in row["ours"].items():
            lines.append(f"| {row['D']} | {row['k']} | tooldiff | {p} | {r['rows_per_s']:,.0f} | "
                         f"{r['ms_per_step']:.2f} | {fmt(r['peak_gb'], '.2f')} | {fmt(r['syncs_per_step'])} | "
                         f"{r['encoder']['tflops']:.1f} | {r['graph'][:60]} |")
        for p, r in row["dense_masked"].items():
            lines.append(f"| {row['D']} | {row['k']} | dense masked (paper) | {p} | {r['rows_per_s']:,.0f} | "
                         f"{r['ms_per_step']:.2f} | {fmt(r['peak_gb'], '.2f')} | | | |")
    lines += ["", "| D | k | default | ours / dense fp32 | ours / dense bf16 | encoder / same-shape bf16 matmul | "
              "encoder / 8192³ bf16 | same-shape bf16 | same-shape TF32 |", "|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    peak = s.get("ceilings", {}).get("bf16_tflops")
    for row in cc["shapes"]:
        enc = row["ours"][row["default"]]["encoder"]["tflops"]
        bm = row["bare_matmul"]
        lines.append(f"| {row['D']} | {row['k']} | {row['default']} | {row['ratio_vs_dense_fp32']:.2f}× | "
                     f"{fmt(row.get('ratio_vs_dense_bf16'), '.2f')}× | {enc / bm['bf16_tflops']:.0%} | "
                     f"{fmt(enc / peak if peak else None, '.0%')} | {bm['bf16_tflops']:.0f} | "
                     f"{fmt(bm.get('tf32_tflops'), '.0f')} |")
    gc = cc.get("graph_check")
    if gc:
        lines += ["", f"CUDA graph vs eager, {gc['steps']} steps: max |Δw| = {gc['max_abs_diff']:.3g} "
                  f"(max |w| {gc['max_abs_weight']:.3g}; bitwise equal: {gc['bitwise_equal']})."]
    lines += ["", f"Targets: ours ≥ {TARGETS['crosscoder_ratio']}× the dense masked step; encoder forward ≥ "
              f"{TARGETS['encoder_fraction_bf16']:.0%} of the bf16 matmul rate. Profile: {cc['profile_file']}.", ""]
    return lines


def _md_quality(q: dict, s: dict) -> list[str]:
    lines: list[str] = []
    lines += [f"## Compute settings and quality (train_sweep on planted data, D {q['D']}, k {q['k']}, "
              f"{q['steps']} steps; FVE on held-out rows)", "", "| compute | FVE A | FVE B |", "|---|---:|---:|"]
    lines += [f"| {p} | {f['a']:.4f} | {f['b']:.4f} |" for p, f in q["fve"].items()]
    lines.append("")
    return lines


def _md_sweep(w: dict, s: dict) -> list[str]:
    lines: list[str] = []
    lines += [f"## Sweep in one pass (train_sweep end to end, D {w['D']}, {w['steps']} steps, batch {w['batch']})",
              "", f"- 1 config: {w['configs_1']['seconds']:.1f} s (peak {fmt(w['configs_1']['peak_gb'], '.1f')} GB); "
              f"8 configs: {w['configs_8']['seconds']:.1f} s (peak {fmt(w['configs_8']['peak_gb'], '.1f')} GB): "
              f"**{w['ratio_8_vs_1']:.2f}×** the time of one (8 separate runs: 8×)", ""]
    return lines


def _md_steering(g: dict, s: dict) -> list[str]:
    lines: list[str] = []
    lines += [f"## Steering overhead (greedy, {g['prompts']} prompts × {g['new_tokens']} new tokens, layer "
              f"{g['layer']}, {g['repeats']} interleaved repeats, peak {fmt(g['peak_gb'], '.1f')} GB)", "",
              "| condition | tokens/s | overhead (pooled) | overhead (median of paired repeats) |",
              "|---|---:|---:|---:|"]
    lines += [f"| {n} | {c['tokens_per_s']:,.0f} | {c['overhead']:+.1%} | {c['paired_overhead_median']:+.1%} |"
              for n, c in g["conditions"].items()]
    lines += ["", f"Target ≤ {TARGETS['steering_overhead']:.0%}.", ""]
    return lines


MARKDOWN_SECTIONS = {"ceilings": _md_ceilings, "harvest": _md_harvest, "crosscoder": _md_crosscoder, "quality": _md_quality, "sweep": _md_sweep, "steering": _md_steering}


def markdown(run: Run) -> str:
    e, s = run.env, run.sections
    lines = [f"# tooldiff at the paper's scale ({run.scale})", "",
             f"{e['date_utc']} UTC, commit {e['commit']}, {e['gpu'] or 'CPU'} ({run.device}); torch {e['torch']}, "
             f"transformers {e['transformers']}, CUDA {e['cuda']}.", ""]
    for name, render in MARKDOWN_SECTIONS.items():
        if name in s:
            lines += render(s[name], s)
    lines += ["## Precision", "", PRECISION_NOTE, ""]
    if run.errors:
        lines += ["## Errors", ""] + [f"- {k}: {v.splitlines()[-1]}" for k, v in run.errors.items()] + [""]
    lines.append("Section wall times: " + ", ".join(f"{k} {v:.0f} s" for k, v in run.seconds.items()))
    return "\n".join(lines) + "\n"


PRECISION_NOTE = (
    "Models run in bf16 (the harvest stores float32 rows). The crosscoder keeps float32 weights, gradients, loss "
    "and Adam state. On a GPU its dense products (the encoder forward that picks the k live latents, and, with "
    "`kernels = \"dense\"`, the decode and the encoder gradient) take bf16 operands with float32 results "
    "(`train.precision = \"auto\"`; TF32 and fp32 are options), the matrix units' full rate; the step is replayed "
    "as one CUDA graph. On a CPU everything is float32 with sparse gathers. The quality table compares the settings "
    "on the same data.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--scale", choices=sorted(SCALES), default="paper")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--only", nargs="*", choices=["ceilings", "harvest", "crosscoder", "quality", "sweep", "steering"])
    args = parser.parse_args(argv)
    sc, dev = SCALES[args.scale], Device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    run = Run(args.scale, args.device, environment(dev))
    state: dict = {}
    sections = {"ceilings": lambda: section_ceilings(sc, dev), "harvest": lambda: section_harvest(sc, dev, state),
                "crosscoder": lambda: section_crosscoder(sc, dev, args.out), "quality": lambda: section_quality(sc, dev),
                "sweep": lambda: section_sweep(sc, dev), "steering": lambda: section_steering(sc, dev, state)}
    wanted = args.only or list(sections)
    if "steering" in wanted and "harvest" not in wanted:
        wanted = ["harvest", *wanted]  # steering generates with the harvest's model
    for name in [n for n in sections if n in wanted]:
        start = time.perf_counter()
        print(f"[{datetime.now(timezone.utc):%H:%M:%S}] {name} ...", flush=True)
        try:
            run.sections[name] = sections[name]()
        except Exception:  # noqa: BLE001 - a benchmark reports every section it can
            run.errors[name] = traceback.format_exc()
            print(run.errors[name], file=sys.stderr, flush=True)
        run.seconds[name] = time.perf_counter() - start
        (args.out / "gpu_paper_scale.json").write_text(json.dumps(asdict(run), indent=1, default=str))
    text = markdown(run)
    (args.out / "gpu_paper_scale.md").write_text(text)
    print(text)
    return 1 if run.errors else 0


if __name__ == "__main__":
    sys.exit(main())
