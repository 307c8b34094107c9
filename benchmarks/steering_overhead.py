"""Generation tokens/s with steering vs without, side by side in one run.

    python benchmarks/steering_overhead.py [--model DIR | --organism DIR | --launch-bound DIR] [--batch 8]
        [--new-tokens 64] [--repeats 60] [--threads 1]

Runs the shared generation loop (`tooldiff.interventions.generate_completions`, the one the
server uses) on one fixed batch of prompts, alternating conditions in a shuffled order each
repeat so that machine noise hits all of them alike. Every row generates exactly
`--new-tokens` tokens (EOS is ignored, as in vLLM's throughput benchmarks), so a steering that
changes *when* the model stops cannot change the token count. Conditions:

- plain: no steering;
- last_prompt: `add` of a unit vector, dose 0.5, at the last prompt token (the server's default);
- all: the same at every prompt and generated token (the costliest placement);
- per_row: half the rows steered at last_prompt, half not (a mixed server batch).

Prints tokens/s per condition and its ratio to plain (the target is >= 0.95), and exits 1 if
any steered condition is below the target (judged on the median of per-repeat paired ratios;
see `report`). Default model: the tiny organism, built into --organism if missing (an
organism already there is used as is).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # gpu_paper_scale's tokenizer builder

TARGET = 0.95


class IgnoreEos:
    """The tokenizer seen by the loop, without an EOS id: every row runs to --new-tokens."""

    eos_token_id = None

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)

    def __call__(self, *args, **kwargs):
        return self._tokenizer(*args, **kwargs)


def launch_bound_model(directory: str) -> str:
    """A random 36-layer, 64-wide Qwen2 (1.9M params): its decoding step is almost all per-kernel
    host work, as a 3B model's is on a GPU (33 ms a step on an H200, docs/notes), so it shows what
    the steering hooks cost the host without a GPU."""
    from pathlib import Path

    from transformers import Qwen2Config, Qwen2ForCausalLM

    from gpu_paper_scale import build_tokenizer

    out = Path(directory)
    if not (out / "config.json").is_file():
        build_tokenizer(out)
        torch.manual_seed(0)
        cfg = Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=36, num_attention_heads=4,
                          num_key_value_heads=2, vocab_size=4096, max_position_embeddings=512)
        Qwen2ForCausalLM(cfg).save_pretrained(str(out))
    return str(out)


def load(args):
    from tooldiff.hf import load_model, load_tokenizer, render_prompt

    if args.launch_bound:
        args.model = launch_bound_model(args.launch_bound)
    if args.model:
        model, tokenizer = load_model(args.model), load_tokenizer(args.model)
        prompts = [render_prompt(tokenizer, {"messages": [{"role": "user", "content": f"Request number {i}: what now?"}]})
                   for i in range(args.batch)]
        return model, tokenizer, prompts
    from pathlib import Path

    from tooldiff.organism import build_organism, load_organism
    from tooldiff.organism.info import INFO_FILE

    if not (Path(args.organism) / INFO_FILE).exists():  # an existing organism is used as is
        build_organism(args.organism, preset="tiny", seed=0)
    org = load_organism(args.organism)
    records = [r for r in org.records("test") if r.get("kind") == "call"][: args.batch]
    return org.rl, org.tokenizer, [render_prompt(org.tokenizer, r) for r in records]


def conditions(model, batch: int, layer: int) -> dict:
    from tooldiff.hf import hidden_size

    gen = torch.Generator().manual_seed(0)
    vector = torch.randn(hidden_size(model), generator=gen).tolist()

    def add(positions):
        return {"op": "add", "layer": layer, "vector": vector, "dose": 0.5, "positions": positions}

    return {
        "plain": None,
        "last_prompt": [add("last_prompt")],
        "all": [add("all")],
        "per_row": [[add("last_prompt")] if i % 2 == 0 else [] for i in range(batch)],
    }


def time_once(model, tokenizer, prompts, interventions, new_tokens: int) -> tuple[int, float]:
    from tooldiff.interventions import generate_completions

    start = time.perf_counter()
    out = generate_completions(model, tokenizer, prompts, interventions=interventions, max_new_tokens=new_tokens,
                               batch_size=len(prompts), progress=False)
    seconds = time.perf_counter() - start
    return sum(len(c.token_ids) for c in out), seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="HF model directory (default: the tiny organism's RL model)")
    parser.add_argument("--launch-bound", metavar="DIR", help="use (and build in DIR if missing) a random 36-layer "
                        "model whose decoding is host-bound, like a 3B model's on a GPU")
    parser.add_argument("--organism", default="/tmp/tooldiff-bench/organism", help="organism directory")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=60, help="interleaved repeats (shared machines need many)")
    parser.add_argument("--layer", type=int, default=None, help="steered layer (default: the middle one)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from tooldiff.hf import n_layers

    model, tokenizer, prompts = load(args)
    model.generation_config.eos_token_id = None
    tokenizer = IgnoreEos(tokenizer)
    layer = args.layer if args.layer is not None else n_layers(model) // 2
    conds = conditions(model, len(prompts), layer)
    for interventions in conds.values():  # warm-up: allocator, kernels, first-call costs
        time_once(model, tokenizer, prompts, interventions, 8)

    tokens = {name: 0 for name in conds}
    seconds = {name: 0.0 for name in conds}
    per_repeat = {name: [] for name in conds}
    order = list(conds)
    rng = random.Random(0)
    for _ in range(args.repeats):
        rng.shuffle(order)  # interleaved, in a fresh order each repeat
        for name in order:
            n, s = time_once(model, tokenizer, prompts, conds[name], args.new_tokens)
            tokens[name] += n
            seconds[name] += s
            per_repeat[name].append(n / s)

    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params, {n_layers(model)} layers, "
          f"layer {layer} steered; batch {len(prompts)} x {args.new_tokens} new tokens; {args.repeats} interleaved repeats; "
          f"{args.threads} thread(s)")
    return report(tokens, seconds, per_repeat)


def report(tokens: dict, seconds: dict, per_repeat: dict) -> int:
    """Print the table; exit code 1 if any steered condition's paired ratio misses the target.

    The verdict reads the median over repeats of (condition / plain) measured within the same
    repeat: on a shared machine a burst of load slows whichever run it lands on, and pairing
    plus the median keeps one burst from deciding the verdict. The pooled ratio (total tokens
    over total seconds) is printed alongside; on a quiet machine the two agree.
    """
    plain = tokens["plain"] / seconds["plain"]
    print(f"{'condition':<12} {'tokens/s':>10} {'median/rep':>11} {'pooled':>7} {'paired':>7} {'(IQR)':>15}")
    paired = {}
    for name in tokens:
        ratios = [r / p for r, p in zip(per_repeat[name], per_repeat["plain"])]
        q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
        paired[name] = statistics.median(ratios)
        rate = tokens[name] / seconds[name]
        print(f"{name:<12} {rate:>10.1f} {statistics.median(per_repeat[name]):>11.1f} {rate / plain:>7.3f} "
              f"{paired[name]:>7.3f}   ({q1:.3f}-{q3:.3f})")
    del paired["plain"]
    misses = [f"{name} {ratio:.3f}" for name, ratio in paired.items() if ratio < TARGET]
    if misses:
        print(f"FAIL: paired ratio below {TARGET}: {', '.join(misses)}")
        return 1
    print(f"PASS: every steered condition >= {TARGET} x plain (lowest paired ratio {min(paired.values()):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
