"""Wall time of `tooldiff demo` from nothing, per stage, against the 15-minute target (not run in CI).

    .venv/bin/python benchmarks/demo_time.py [--out DIR] [--preset default|tiny] [--n-per-kind 60]
        [--threads N] [--target 900] [--no-positive-control] [--reuse]

Runs the real CLI in a child process (imports and model loading count, as they do for a user)
into DIR (a temporary directory unless --out is given; emptied first unless --reuse), then prints
each stage's wall and CPU seconds from DIR/results.json, the total against the target, and the
load average: the machine is shared, and a wall time far above the CPU time (or a load above the
core count) means other jobs slowed the run down.
Exits 1 when the total is over the target.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 900


def run_demo_cli(out: Path, preset: str, n_per_kind: int, threads: int | None, positive: bool) -> tuple[float, float]:
    """(wall, cpu) seconds of one `tooldiff demo` run in a child process."""
    cli = Path(sys.executable).parent / "tooldiff"
    cmd = [str(cli), "demo", "--out", str(out), "--preset", preset, "--n-per-kind", str(n_per_kind),
           "--positive-control" if positive else "--no-positive-control"]
    if threads:
        cmd += ["--threads", str(threads)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def table(results: dict, wall: float, cpu: float, target: float, loads: tuple) -> str:
    """Stages in order, wall and CPU seconds. The positive control's stages ran in a child process
    beside the full study, so they overlap it and are listed apart (the parent's wait for them is
    its own row)."""
    timings, cpu_s = results["timings_s"], results.get("cpu_s", {})
    beside = [n for n in timings if n.startswith(("organism (rank1)", "rank1: "))]
    main = [n for n in timings if n not in beside]
    width = max(len(name) for name in timings) + 4

    def row(name: str, indent: str = "") -> str:
        return (f"{indent}{name:{width - len(indent)}s} {timings[name]:8.1f} {cpu_s.get(name, float('nan')):8.1f}"
                f" {timings[name] / wall:6.0%}")

    lines = [f"{'stage':{width}s} {'wall s':>8s} {'CPU s':>8s} {'share':>6s}"] + [row(n) for n in main]
    other = wall - sum(timings[n] for n in main)
    lines.append(f"{'(start-up, imports)':{width}s} {other:8.1f} {'':8s} {other / wall:6.0%}")
    verdict = "within" if wall <= target else "OVER"
    busy = "; other jobs were running before it started, so the times are pessimistic" if loads[0] > 1 else ""
    lines += [f"{'total':{width}s} {wall:8.1f} {cpu:8.1f}   {verdict} the {target:.0f} s target ({wall / target:.0%})",
              f"CPU / wall = {cpu / wall:.2f} on {os.cpu_count()} cores; load average before {loads[0]:.1f}, "
              f"after {loads[1]:.1f} (the run's own load included)" + busy]
    if beside:
        lines.append("beside the full study (positive control, child process):")
        lines += [row(n, "  ") for n in beside]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--n-per-kind", type=int, default=60)
    ap.add_argument("--threads", type=int, default=None, help="torch threads for the organism's pretraining (default: the demo's, all cores)")
    ap.add_argument("--target", type=float, default=TARGET_SECONDS)
    ap.add_argument("--no-positive-control", dest="positive", action="store_false")
    ap.add_argument("--reuse", action="store_true", help="keep DIR's contents (cached stages are then not timed)")
    args = ap.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="demo-time-")) / "demo"
    if out.exists() and not args.reuse:
        shutil.rmtree(out)
    load_before = os.getloadavg()[0]
    wall, cpu = run_demo_cli(out, args.preset, args.n_per_kind, args.threads, args.positive)
    results = json.loads((out / "results.json").read_text())
    print(f"tooldiff demo --preset {args.preset} --n-per-kind {args.n_per_kind} -> {out}")
    print(table(results, wall, cpu, args.target, (load_before, os.getloadavg()[0])))
    return 0 if wall <= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
