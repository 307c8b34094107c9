"""Wall time of a new user's `make demo`: a fresh clone, its own venv, the demo on the shipped pair.

    .venv/bin/python benchmarks/demo_time.py [--clone] [--rebuild] [--out DIR] [--preset default|tiny]
        [--n-per-kind 60] [--threads N] [--target 480] [--no-positive-control] [--reuse]

--clone: clone this repository's HEAD into a temporary directory, install it there as the README
says (`make install`: its own .venv, CPU torch from constraints.txt) and time the install; the
demo then runs with that clone's CLI, as a new user's would.
--rebuild: also run the same demo with `--rebuild` (the organism built from its recipe) into a
second directory and print the two totals side by side, as a ratio.

Each demo runs the real CLI in a child process (imports and model loading count, as they do for
a user) and prints each stage's wall and CPU seconds from DIR/results.json, the total against
the target, and the load average: the machine is shared, and a wall time far above the CPU
time (or a load above the core count) means other jobs slowed the run down.
Exits 1 when install + demo (shipped pair) is over the target. Not run in CI.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 480  # issue 20: install + demo on the shipped pair, 2 cores


def timed(cmd: list[str], cwd: Path | None = None) -> tuple[float, float]:
    """(wall, cpu) seconds of a command run in a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=cwd)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def fresh_clone(root: Path) -> tuple[Path, float]:
    """Clone HEAD into root/tooldiff and `make install` there; (its tooldiff CLI, install seconds)."""
    repo = Path(__file__).resolve().parents[1]
    subprocess.run(["git", "clone", "-q", str(repo), str(root / "tooldiff")], check=True)
    wall, _ = timed(["make", "install"], cwd=root / "tooldiff")
    return root / "tooldiff" / ".venv" / "bin" / "tooldiff", wall


def demo_cmd(cli: Path, out: Path, args, rebuild: bool = False) -> list[str]:
    cmd = [str(cli), "demo", "--out", str(out), "--preset", args.preset, "--n-per-kind", str(args.n_per_kind),
           "--positive-control" if args.positive else "--no-positive-control"] + (["--rebuild"] if rebuild else [])
    return cmd + (["--threads", str(args.threads)] if args.threads else [])


def run_and_report(cli: Path, out: Path, args, rebuild: bool, install_s: float = 0.0) -> float:
    """One demo run and its stage table; returns install + demo wall seconds."""
    if out.exists() and not args.reuse:
        shutil.rmtree(out)
    load_before = os.getloadavg()[0]
    wall, cpu = timed(demo_cmd(cli, out, args, rebuild))
    from tooldiff.report.results import read_results

    results = read_results(out / "results.json")
    print(f"\n{' '.join(demo_cmd(cli, out, args, rebuild)[1:])}  (organism {results.organism_source})")
    print(table(results, wall, cpu, args.target, (load_before, os.getloadavg()[0])))
    if install_s:
        total = install_s + wall
        print(f"install (fresh clone, make install) {install_s:.1f} s + demo {wall:.1f} s = {total:.1f} s: "
              f"{'within' if total <= args.target else 'OVER'} the {args.target:.0f} s target")
    return install_s + wall


def table(results, wall: float, cpu: float, target: float, loads: tuple) -> str:
    """Stages in order, wall and CPU seconds. The positive control's stages ran in a child process
    beside the full study, so they overlap it and are listed apart (the parent's wait for them is
    its own row)."""
    timings, cpu_s = results.timings_s or {}, results.cpu_s or {}
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
    ap.add_argument("--clone", action="store_true", help="time a fresh clone's install, and run its CLI")
    ap.add_argument("--rebuild", action="store_true", help="also run the demo with --rebuild, side by side")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="demo-time-"))
    out = args.out or root / "demo"
    cli, install_s = fresh_clone(root) if args.clone else (Path(sys.executable).parent / "tooldiff", 0.0)
    total = run_and_report(cli, out, args, rebuild=False, install_s=install_s)
    if args.rebuild:
        rebuilt = run_and_report(cli, out.with_name(out.name + "-rebuild"), args, rebuild=True, install_s=install_s)
        print(f"\nside by side: shipped pair {total:.1f} s, --rebuild {rebuilt:.1f} s: "
              f"the shipped pair takes {total / rebuilt:.2f}x the time ({rebuilt / total:.1f}x faster)")
    return 0 if total <= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
