"""`tooldiff run CONFIG --plan` on the shipped Qwen2.5-3B vs ToolRL config: no network, no weights."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tooldiff import configs
from tooldiff.cli import app
from tooldiff.crosscoder.config import load_sweep
from tooldiff.errors import UserError
from tooldiff.study import load_study, plan_study
from tooldiff.study.run import study_sweep

REPO = Path(__file__).resolve().parents[1]
CONFIGS = configs.HOME
REAL = CONFIGS / "qwen2.5-3b-toolrl.toml"


@pytest.fixture
def no_weights(monkeypatch):
    """Any attempt to load weights or reach the Hub fails the test."""
    def boom(*a, **k):
        raise AssertionError("--plan must not load weights or download")

    import huggingface_hub
    import transformers

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", boom)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", boom)
    monkeypatch.setattr("tooldiff.hf.load_model", boom)


def test_paper_sweep_is_the_48_config_grid():
    sweep = load_sweep(CONFIGS / "sweep-paper.toml")
    grid = {(c.dict_size, c.k, c.excl_a, c.lambda_excl) for c in sweep.crosscoder}
    assert len(sweep.crosscoder) == len(grid) == 48
    assert {c.dict_size for c in sweep.crosscoder} == {8192, 16384} and {c.k for c in sweep.crosscoder} == {45, 90, 160}
    assert {c.excl_a for c in sweep.crosscoder} == {0.0, 0.03, 0.05, 0.1}
    assert all(c.steps == 9000 and c.lr == 1e-4 and c.grad_clip == 1.0 for c in sweep.crosscoder)
    assert sweep.train.batch_size == 1024


def test_plan_of_the_real_config_has_sane_numbers(no_weights):
    cfg = load_study(REAL)
    assert (cfg.pair.base, cfg.pair.rl, cfg.pair.layer) == ("Qwen/Qwen2.5-3B", "chengq9/ToolRL-Qwen2.5-3B", 13)
    plan = plan_study(cfg, study_sweep(cfg))
    m = plan.model
    assert (m["d_model"], m["n_layers"], m["vocab"]) == (2048, 36, 151936)
    assert 3.0e9 < m["params"] < 3.2e9  # Qwen2.5-3B: 3.09 B with tied embeddings
    stages = {s.stage: s for s in plan.stages}
    harvest = stages["harvest (train)"]
    assert harvest.disk_bytes == 80_000 * 2 * 2048 * 4  # 40k + 40k last-token rows, two models, fp32
    assert 2 * 3.0e9 * 2 < harvest.memory_bytes < 40e9  # two bf16 models plus a batch
    assert 60 < harvest.seconds < 24 * 3600
    assert 0 < stages["train"].seconds < 24 * 3600 and stages["train"].memory_bytes < 80e9
    assert 0 < plan.total_seconds < 48 * 3600


def test_plan_command_prints_the_table_without_weights(no_weights):
    result = CliRunner().invoke(app, ["run", "qwen2.5-3b-toolrl", "--plan"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for needle in ("3.09 B params", "d=2048", "harvest (train)", "train", "experiment", "total", "1.3 GB"):
        assert needle in result.output


def test_plan_rejects_a_layer_outside_the_model(no_weights):
    cfg = load_study(REAL)
    bad = cfg.model_copy(update={"pair": cfg.pair.model_copy(update={"layer": 36})})
    with pytest.raises(UserError, match="layer 36 is out of range"):
        plan_study(bad, study_sweep(bad))


def test_a_shipped_study_writes_and_reads_data_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_study("qwen2.5-3b-toolrl")
    assert cfg.root == configs.HOME and cfg.work_path(cfg.out) == tmp_path / "runs" / "qwen2.5-3b-toolrl"
    assert cfg.path(cfg.pair.base_config).is_dir() and cfg.path(cfg.sweep.file).is_file()
    copy = tmp_path / "mine" / "s.toml"
    copy.parent.mkdir()
    copy.write_text(REAL.read_text())
    assert load_study(copy).work_path("runs") == copy.parent / "runs"  # a user's file: its own directory
    with pytest.raises(UserError, match="neither a file nor a shipped config"):
        load_study("no-such-study")


def test_unknown_study_key_is_a_user_error(tmp_path):
    bad = tmp_path / "s.toml"
    bad.write_text(REAL.read_text().replace("[pair]\n", "[pair]\nlayr = 3\n"))
    with pytest.raises(UserError, match="unknown key 'pair.layr'"):
        load_study(bad)


def test_measured_rates_are_the_committed_benchmark_results():
    """tooldiff.study.rates holds what benchmarks/gpu_paper_scale.py measured, not a guess."""
    import json

    from tooldiff.hf import load_config
    from tooldiff.study.plan import model_shape
    from tooldiff.study.rates import RATES, rates_from_results

    h200 = RATES["h200"]
    results = REPO / "benchmarks" / "results" / "gpu-paper-scale"
    main = json.loads((REPO / h200.source).read_text())
    steering = json.loads((results / "20261204-1649-h200-4652bc0.json").read_text())["sections"]["steering"]
    shape = model_shape(load_config(CONFIGS / "models" / "qwen2.5-3b"))
    derived = rates_from_results(main["sections"]["harvest"], main["sections"]["crosscoder"], steering,
                                 shape["params_per_layer"], main["env"]["gpu"], h200.source, h200.memory_gb)
    assert derived == h200


def test_unknown_gpu_has_no_rates(no_weights):
    cfg = load_study(REAL)
    other = cfg.model_copy(update={"runtime": cfg.runtime.model_copy(update={"gpu": "a100"})})
    with pytest.raises(UserError, match="no measured rates for GPU 'a100'"):
        plan_study(other, study_sweep(other))
