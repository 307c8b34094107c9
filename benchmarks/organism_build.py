"""Build time of the organism, per stage, and its headline metrics (not run in CI).

    .venv/bin/python benchmarks/organism_build.py [--preset tiny|default|all] [--seed 0]
        [--variant full|rank1] [--out DIR] [--threads N]

Builds from scratch into DIR/<preset> (a temporary directory unless --out is given; an existing
build there is replaced), then prints the time of each stage from organism.json, the targets
(tiny <= 120 s, default <= 720 s), and the load average before and after: the machine is shared,
and a load above the core count means other jobs slowed the build down.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = {"tiny": 120, "default": 720}  # issue 20: <= 12 min on 2 cores


def _metrics_line(name: str, m: dict) -> str:
    call = m["by_kind"]["call"]["strict"]
    fpr = m["fpr_by_kind"]
    return (f"  {name:4s} strict on call prompts {call['mean']:.3f} [{call['ci95'][0]:.3f}, {call['ci95'][1]:.3f}]"
            f"  strict (all, M) {m['strict']['mean']:.3f}  FPR {m['trigger']['fpr']:.3f}"
            f" (not_offered {fpr['not_offered']:.3f}, chitchat {fpr['chitchat']:.3f})"
            f"  calls/prompt {m['calls_per_prompt']:.2f}  offered-tool check AUROC {m['offered_check_auroc']:.3f}")


def bench(preset: str, seed: int, variant: str, out: Path, threads: int) -> dict:
    from tooldiff.organism import build_organism

    load_before = os.getloadavg()
    start = time.perf_counter()
    build_organism(out, preset=preset, seed=seed, variant=variant, force=True, threads=threads)
    wall = time.perf_counter() - start
    info = json.loads((out / "organism.json").read_text())
    seconds = info["build_seconds"]
    print(f"\n== preset {preset}, seed {seed}, variant {variant}: {out}")
    for stage, value in seconds.items():
        print(f"  {stage:10s} {value:8.1f} s")
    target = TARGET_SECONDS.get(preset)
    verdict = "" if target is None else f"  (target <= {target} s: {'met' if wall <= target else 'MISSED'})"
    print(f"  wall       {wall:8.1f} s{verdict}")
    print(f"  load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} cores, torch threads {info['torch_threads']}")
    for name in ("base", "rl"):
        print(_metrics_line(name, info["metrics"][name]))
    print(f"  layer {info['layer']['recommended']}  RL DoM AUROC by layer "
          + ", ".join(f"{a:.3f}" for a in info["layer"]["rl_dom_auroc"]))
    return {"preset": preset, "wall": wall, "stages": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="all", help="tiny | default | all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variant", default="full")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for pretraining the base and for RL")
    args = parser.parse_args()
    presets = ["tiny", "default"] if args.preset == "all" else [args.preset]
    with tempfile.TemporaryDirectory(prefix="organism-bench-") as tmp:
        root = args.out or Path(tmp)
        for preset in presets:
            bench(preset, args.seed, args.variant, root / preset, args.threads)


if __name__ == "__main__":
    main()
