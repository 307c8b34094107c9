"""A training run killed with SIGKILL resumes from its last state and ends exactly as an
uninterrupted run: same data order (a function of data_seed and step), same optimizer state,
same RNG. Tolerance: bitwise on the same machine and thread count; checked to 1e-6 here."""

import json
import os
import signal
import subprocess
import sys
import time

import torch

from tooldiff.activations.synthetic import planted_activations, write_harvest
from tooldiff.crosscoder import Crosscoder, train_sweep

torch.set_num_threads(1)

SWEEP = """
[train]
batch_size = 64
checkpoint_every = 20
eval_rows = 300

[[crosscoder]]
name = "dfc"
dict_size = 64
excl_a = 0.1
excl_b = 0.1
k = 4
steps = 400
lr = 3e-3
aux_k = 8
dead_tokens = 500

[[crosscoder]]
name = "btk"
dict_size = 48
sparsity = "batchtopk"
k = 3
steps = 300
lr = 2e-3
"""


def train_cmd(acts, sweep, out):
    return [sys.executable, "-m", "tooldiff.cli", "train", "--acts", str(acts), "--config", str(sweep),
            "--out", str(out)]


def env():
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def wait_for_state(out, proc, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        states = list((out / "_state").glob("step-*[0-9]")) if (out / "_state").is_dir() else []
        if states:
            return
        if proc.poll() is not None:
            raise AssertionError(f"training exited early: {proc.stderr.read()}")
        time.sleep(0.01)
    raise AssertionError("no checkpoint appeared")


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    write_harvest(tmp_path / "acts", planted_activations(2000, 16, n_shared=24, n_excl=4, seed=5))
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(SWEEP)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(train_cmd(tmp_path / "acts", sweep, killed), env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    wait_for_state(killed, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    states = sorted((killed / "_state").glob("step-*[0-9]"))
    assert states and int(states[-1].name.split("-")[1]) < 300  # really interrupted mid-run
    assert not (killed / "dfc" / "metrics.json").exists()

    resumed = subprocess.run(train_cmd(tmp_path / "acts", sweep, killed), env=env(), capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    train_sweep(tmp_path / "acts", sweep, tmp_path / "straight")  # uninterrupted, same seed (1 thread too)

    for name in ("dfc", "btk"):
        a = json.loads((killed / name / "metrics.json").read_text())
        b = json.loads((tmp_path / "straight" / name / "metrics.json").read_text())
        for key in ("fve", "l0", "dead_frac", "theta", "step"):
            assert _close(a[key], b[key]), (name, key, a[key], b[key])
        assert _close([h["loss"] for h in a["history"]], [h["loss"] for h in b["history"]])
        ca, cb = Crosscoder.load(killed / name), Crosscoder.load(tmp_path / "straight" / name)
        for (k, ta), tb in zip(ca.state_dict().items(), cb.state_dict().values()):
            assert torch.allclose(ta, tb, rtol=1e-6, atol=1e-6), (name, k)


def _close(a, b, tol=1e-6):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], tol) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b))
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))
