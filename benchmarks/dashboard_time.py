"""Time to write the dashboard and to open its pages, against the targets (not run in CI).

    .venv/bin/python benchmarks/dashboard_time.py [RUN_DIR] [--out DIR] [--no-browser]
        [--experiment DIR --results FILE --positive DIR] [--screenshots DIR]

RUN_DIR is a `tooldiff demo` output (default runs/demo): its main study RUN_DIR/full/experiment,
its results.json and its positive control RUN_DIR/rank1/experiment; or name the pieces.
Writes the dashboard with the real CLI in a child process (imports and model loading count, as for
a user) and prints its wall and CPU seconds, its size and page count against the targets (30 s on
2 cores, 20 MB), then opens the index and the largest latent page in headless Chromium and prints
each page's load time (navigation start to load end, then to the page rendered) against 2 s. The
machine may be shared: a wall time far above the CPU time, or a load above the core count, means
other jobs slowed the write down. Exits 1 when a target is missed.
--screenshots DIR also saves PNGs of the index and of the largest latent page as the browser
rendered them (1280 px wide; the README's pictures come from here).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WRITE_TARGET_S, SIZE_TARGET_B, OPEN_TARGET_S = 30.0, 20e6, 2.0
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic")


def write(args: argparse.Namespace, out: Path) -> tuple[float, float]:
    cli = Path(sys.executable).parent / "tooldiff"
    cmd = [str(cli), "dashboard", str(args.experiment), "--out", str(out)]
    for flag in ("results", "positive"):
        if getattr(args, flag):
            cmd += [f"--{flag}", str(getattr(args, flag))]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def open_times(pages: dict[str, Path], shots: Path | None = None) -> dict[str, float]:
    """Seconds from navigation start to the load event's end, per page (a fresh browser, file://);
    with `shots`, a PNG of each page's first screen there too, named dashboard-<label>.png."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (*FLAGS, f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        times = {}
        for label, page in pages.items():
            driver.get(page.as_uri())
            timing = driver.execute_script("const t = performance.getEntriesByType('navigation')[0];"
                                           "return [t.loadEventEnd, t.domContentLoadedEventEnd];")
            times[str(page)] = timing[0] / 1000
            if shots is not None:
                shots.mkdir(parents=True, exist_ok=True)
                driver.set_window_size(1280, 900)
                driver.save_screenshot(str(shots / f"dashboard-{label}.png"))
        return times
    finally:
        driver.quit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", type=Path, default=Path("runs/demo"))
    parser.add_argument("--experiment", type=Path)
    parser.add_argument("--results", type=Path)
    parser.add_argument("--positive", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--screenshots", type=Path, help="save a PNG of each opened page here")
    args = parser.parse_args(argv)
    if args.experiment is None:
        args.experiment = args.run / "full" / "experiment"
        args.results = args.results or args.run / "results.json"
        positive = args.run / "rank1" / "experiment"
        args.positive = args.positive or (positive if positive.is_dir() else None)
    out = args.out or Path(tempfile.mkdtemp(prefix="dashboard-")) / "dashboard"
    loads = os.getloadavg()
    wall, cpu = write(args, out)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    latents = sorted((out / "latents").glob("*.html"), key=lambda p: p.stat().st_size)
    print(f"dashboard of {args.experiment}: {len(latents)} latent pages, {size / 1e6:.1f} MB "
          f"({size / SIZE_TARGET_B:.2f} of the {SIZE_TARGET_B / 1e6:.0f} MB target)")
    print(f"written in {wall:.1f} s wall, {cpu:.1f} s CPU ({wall / WRITE_TARGET_S:.2f} of the {WRITE_TARGET_S:.0f} s "
          f"target); load average before: {loads[0]:.2f} on {os.cpu_count()} cores")
    ok = wall <= WRITE_TARGET_S and size <= SIZE_TARGET_B
    if not args.no_browser:
        pages = {"index": out / "index.html", "largest-latent": latents[-1]}
        for page, seconds in open_times(pages, args.screenshots).items():
            print(f"opened {Path(page).relative_to(out)} ({Path(page).stat().st_size / 1e3:.0f} kB) in {seconds:.2f} s "
                  f"({seconds / OPEN_TARGET_S:.2f} of the {OPEN_TARGET_S:.0f} s target)")
            ok = ok and seconds <= OPEN_TARGET_S
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
