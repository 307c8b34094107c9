"""The package works without the checkout: a wheel of the project, installed into a bare folder,
runs the tiny demo and plans the paper's study (a config shipped as package data) from a directory
that is not the repository — and the demo, like the organism's build, prints only tooldiff's own
lines (no library warning, no tqdm bar: SPEC's quiet-output rule). The demo reuses the session's
tiny organism (built once by `tooldiff organism`, whose printed lines are checked here too)."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# tooldiff's own line shapes (rich, wide enough never to wrap). A new message of ours that fits
# none of these belongs here; a library's line must be silenced at our call site instead
# (tooldiff.progress.library_quiet).
OURS = [re.compile(p) for p in (
    r"^$",
    r"^─+ .+ ─+$",  # a stage's rule
    r"^.+ ━+( .*)?$",  # a rich progress bar
    r"^stage \w+",  # organism stages
    r"^[\w ():,-]+ done in [\d.]+ s$",  # a stage's time
    r"^demo done in \d+ s: ",
    r"^organism ready in ",
    r"^reusing the organism in ",
    r"^RL twin kept: ",
    r"^warning: the base writes a right call",  # ours: the organism's honesty warning
    r"^positive control \(rank1 organism\) running beside the full study",
    r"^experiment: \d+ conditions x \d+ prompts",
)]
# The demo's own sweep trains 4 crosscoders for 2000 steps (minutes); this one is a user's --sweep file.
TINY_SWEEP = """
[train]
batch_size = 128
eval_rows = 256

[[crosscoder]]
name = "plain"
dict_size = 64
k = 4
steps = 100

[[crosscoder]]
name = "dfc"
dict_size = 64
excl_a = 0.125
excl_b = 0.125
tie_shared = true
k = 4
steps = 100
"""
LIBRARY = re.compile(r"Warning|warnings\.warn|\d+%\|[█▏▎▍▌▋▊▉ ]*\||it/s\]|s/it\]|Traceback")


def _foreign(text: str) -> list[str]:
    """The lines no tooldiff shape accounts for, and any that look like a library's."""
    return [line for line in text.splitlines()
            if LIBRARY.search(line) or not any(p.search(line) for p in OURS)]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[dict, Path]:
    """The project's wheel installed into a folder of its own; (environment, working directory)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # a copy of what the build reads: setuptools leaves build/ behind it
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(root / "dist"), "."],
                   check=True, capture_output=True, cwd=source)
    (wheel,) = (root / "dist").glob("tooldiff-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(root / "T"), str(wheel)],
                   check=True, capture_output=True, cwd=root)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLDIFF")}
    env.update(PYTHONPATH=str(root / "T"), COLUMNS="400", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    work = root / "work"
    work.mkdir()
    return env, work


def _run(env: dict, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_the_wheel_imports_from_its_own_folder(installed):
    env, work = installed
    done = _run(env, work, "-c", "import tooldiff; print(tooldiff.__file__)")
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_relative_to(Path(env["PYTHONPATH"])), done.stdout
    assert not Path(done.stdout.strip()).is_relative_to(REPO)


def test_the_wheel_plans_the_shipped_paper_study(installed):
    env, work = installed
    done = _run(env, work, "-m", "tooldiff.cli", "run", "qwen2.5-3b-toolrl", "--plan")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3.09 B params" in done.stdout and "total" in done.stdout


def test_the_organism_build_prints_only_its_own_lines(tiny_build_log):
    """The session's tiny organism was built by `tooldiff organism` (conftest.tiny_organism)."""
    log = tiny_build_log
    if "reusing the organism in " in log:
        pytest.skip("the tiny organism was reused (TOOLDIFF_TEST_ORGANISM), not built by this session")
    assert "organism ready in " in log, log[-4000:]
    assert _foreign(log) == [], log[-4000:]


def test_the_wheel_runs_the_tiny_demo_printing_only_its_own_lines(installed, tiny_organism):
    """The demo finds the session's tiny organism in its output directory and reuses it (its
    build's lines are checked above), trains a small sweep of the user's; the positive control's
    RL stage, study (on that sweep too: the user's instrument) and dashboard run as in every demo."""
    env, work = installed
    shutil.copytree(tiny_organism, work / "X" / "organism")
    (work / "sweep.toml").write_text(TINY_SWEEP)
    done = subprocess.run([sys.executable, "-m", "tooldiff.cli", "demo", "--preset", "tiny", "--out", "X",
                           "--sweep", "sweep.toml", "--n-per-kind", "8", "--threads", "1"], env=env, cwd=work, text=True, timeout=600,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert done.returncode == 0, done.stdout[-4000:]
    assert (work / "X" / "report.md").is_file() and (work / "X" / "dashboard" / "index.html").is_file()
    for run in ("full", "rank1"):  # the control tests the user's sweep, not the demo's
        sweep = json.loads((work / "X" / run / "crosscoders" / "sweep.json").read_text())
        assert sweep["identity"]["configs"] == ["plain", "dfc"], (run, sweep["identity"])
    assert _foreign(done.stdout) == [], done.stdout[-4000:]
    child = (work / "X" / "rank1" / "log.txt").read_text()  # the positive control's own console
    assert _foreign(child) == [], child[-4000:]


def test_the_line_check_catches_a_library_warning_and_a_tqdm_bar():
    assert _foreign("stage rl (tiny, seed 0, full)\nfull: train done in 34.1 s") == []
    assert _foreign("/x/trl/trainer.py:12: UserWarning: something") != []
    assert _foreign("Map: 100%|██████████| 80/80 [00:00<00:00, 999.0 examples/s]") != []
    assert _foreign("loading weights 3/4") != []  # no tooldiff shape


def test_the_wheel_carries_the_shipped_organism_and_it_installs(installed, tmp_path):
    """The shipped pair is package data: every file of its manifest is in the wheel, sha256-checked."""
    env, work = installed
    code = ("from pathlib import Path; from tooldiff.organism.ship import SHIPPED_DIR, install_shipped; "
            "print(SHIPPED_DIR); install_shipped(Path('org'), 'rank1')")
    done = _run(env, work, "-c", code)
    assert done.returncode == 0, done.stdout + done.stderr
    assert Path(done.stdout.strip()).is_relative_to(Path(env["PYTHONPATH"]))
    assert (work / "org" / "rl" / "model.safetensors").is_file()
