"""Study: pair checks before any work, data sources, and `tooldiff run` end to end on a tiny pair."""

import json

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM
from typer.testing import CliRunner

from tooldiff.cli import app
from tooldiff.errors import UserError
from tooldiff.study import load_study, run_study
from tooldiff.study.config import DataSource
from tooldiff.study.data import source_rows, to_record

torch.set_num_threads(1)


def _save(tiny, path, hidden=32, layers=2, extra_token=None):
    tok = tiny.tokenizer()
    if extra_token:
        tok.add_tokens([extra_token])
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=hidden, intermediate_size=64, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, eos_token_id=0)
    Qwen2ForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _study_toml(tmp_path, base, rl, data, sweep_steps=20, layer=1, n_per_kind=2):
    text = f"""
name = "tiny"
out = "{tmp_path / 'run'}"
[pair]
base = "{base}"
rl = "{rl}"
layer = {layer}
[runtime]
harvest_batch_size = 16
[[data.train]]
source = "{data['train']}"
[[data.calibration]]
source = "{data['calibration']}"
[[data.test]]
source = "{data['test']}"
[sweep]
train = {{ batch_size = 64, eval_rows = 32, checkpoint_every = 1000 }}
[[sweep.crosscoder]]
name = "dfc"
dict_size = 64
k = 4
excl_a = 0.1
excl_b = 0.1
steps = {sweep_steps}
lr = 1e-3
[experiment]
alphas = [1, 8]
doses = [1.0]
n_random = 1
n_unrelated = 1
n_per_kind = {n_per_kind}
max_new_tokens = 6
batch_size = 64
n_boot = 100
"""
    path = tmp_path / "study.toml"
    path.write_text(text)
    return path


def _text_data(tmp_path):
    f = tmp_path / "generic.jsonl"
    f.write_text("".join(json.dumps({"text": f"the weather in paris {i}"}) + "\n" for i in range(6)))
    return {"train": f, "calibration": f, "test": f}


@pytest.mark.parametrize("mismatch, message", [
    (dict(hidden=48), "hidden sizes 32 vs 48"),
    (dict(layers=3), "2 vs 3 decoder layers"),
    (dict(extra_token="<zz>"), "different vocabularies"),
])
def test_a_mismatched_pair_fails_before_any_work(tiny, tmp_path, mismatch, message):
    rl, base = _save(tiny, tmp_path / "rl"), _save(tiny, tmp_path / "base", **mismatch)
    cfg = load_study(_study_toml(tmp_path, base, rl, _text_data(tmp_path)))
    with pytest.raises(UserError, match=message):
        run_study(cfg)
    assert not (tmp_path / "run").exists()  # nothing written, no weights harvested
    result = CliRunner().invoke(app, ["run", str(tmp_path / "study.toml")])
    assert result.exit_code != 0 and message in str(result.exception)


def test_plan_catches_the_same_mismatch_from_configs_only(tiny, tmp_path):
    rl, base = _save(tiny, tmp_path / "rl"), _save(tiny, tmp_path / "base", hidden=48)
    cfg = load_study(_study_toml(tmp_path, base, rl, _text_data(tmp_path)))
    with pytest.raises(UserError, match="hidden sizes"):
        run_study(cfg, plan=True)


def test_data_sources_local_jsonl_and_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": [f"row {i}" for i in range(10)]}), tmp_path / "t.parquet")
    src = DataSource(source="t.parquet", text_field="body", skip=3, limit=4)
    rows = [to_record(r, src, i, "x") for i, r in enumerate(source_rows(src, tmp_path))]
    assert [r["text"] for r in rows] == ["row 3", "row 4", "row 5", "row 6"] and rows[0]["kind"] == "generic"
    recs = tmp_path / "r.jsonl"
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    recs.write_text("\n".join(json.dumps(r) for r in [
        {"messages": [{"role": "user", "content": "a"}], "tools": [tool], "gold": [{"f": {}}]},
        {"messages": [{"role": "user", "content": "b"}], "tools": [tool], "gold": []},
        {"messages": [{"role": "user", "content": "c"}]}]))
    src = DataSource(source=str(recs))
    kinds = [to_record(r, src, i, "y")["kind"] for i, r in enumerate(source_rows(src, tmp_path))]
    assert kinds == ["call", "not_offered", "chitchat"]
    with pytest.raises(UserError, match="does not exist"):
        list(source_rows(DataSource(source="missing.jsonl"), tmp_path))


def test_run_study_end_to_end_on_the_organism_pair(tiny_organism, tmp_path):
    data = {"train": tiny_organism / "data" / "rl.jsonl", "calibration": tiny_organism / "data" / "calibration.jsonl",
            "test": tiny_organism / "data" / "test.jsonl"}
    path = _study_toml(tmp_path, tiny_organism / "base", tiny_organism / "rl", data, sweep_steps=30, layer=1)
    cfg = load_study(path)
    results = run_study(cfg)
    out = tmp_path / "run"
    assert (out / "results.json").is_file() and (out / "report.md").is_file()
    assert not list(out.rglob("organism.json")), "the pipeline needs no organism file for a real pair"
    assert (out / "crosscoders" / "dfc" / "config.json").is_file()
    conditions = results.conditions
    assert {c.intervention for c in conditions} >= {"none", "reconstruct", "steer"}
    assert all(c.metrics.n == 6 for c in conditions)

    from tooldiff.report.dashboard.data import RunPaths, load_run

    # the dashboard finds the test prompts in the study's own split file, not in an organism file
    run = load_run(RunPaths(out / "experiment", organism=out / "data" / "test.jsonl"))
    assert sum(p.split == "test" for p in run.main.prompts) == results.n_test and not run.notes
