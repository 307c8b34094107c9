"""benchmarks/gpu_paper_scale.py at its CPU scale: every section runs and reports what it must.

The script measures the paper's scale on a GPU; run here on tiny shapes so that it cannot rot
between the sessions that have a GPU. Timings are not checked (the machines are noisy), only
that each section produced its figures and the report holds them.
"""

import json
import math
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import gpu_paper_scale
    finally:
        sys.path.remove(str(BENCHMARKS))
    out = tmp_path_factory.mktemp("gpu-bench")
    code = gpu_paper_scale.main(["--scale", "cpu", "--device", "cpu", "--out", str(out)])
    return code, json.loads((out / "gpu_paper_scale.json").read_text()), (out / "gpu_paper_scale.md").read_text(), out


def test_every_section_runs_at_cpu_scale(report):
    code, run, _, _ = report
    assert run["errors"] == {} and code == 0
    assert set(run["sections"]) == {"ceilings", "harvest", "crosscoder", "quality", "sweep", "steering"}


def test_the_figures_the_issue_asks_for_are_there(report):
    _, run, text, out = report
    s = run["sections"]
    h = s["harvest"]
    assert h["tokens"] > 0 and h["ratio_decision"] > 0 and h["ratio_all"] > 0 and h["writer_only_s"] > 0
    for row in s["crosscoder"]["shapes"]:
        assert row["ratio_vs_dense_fp32"] > 0 and row["ours"][row["default"]]["encoder"]["tflops"] > 0
        assert row["bare_matmul"]["bf16_tflops"] > 0
    assert s["sweep"]["ratio_8_vs_1"] > 0
    assert set(s["steering"]["conditions"]) >= {"plain", "last_prompt", "all", "per_row"}
    assert all(math.isfinite(f["a"]) and f["a"] <= 1 for f in s["quality"]["fve"].values())
    assert (out / s["crosscoder"]["profile_file"]).is_file()
    for heading in ("## Harvest", "## Crosscoder training step", "## Sweep in one pass", "## Steering overhead",
                    "## Precision"):
        assert heading in text
