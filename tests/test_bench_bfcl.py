"""`tooldiff bench bfcl` end to end: the organism (--limit 20 per category) and a tiny random HF model."""

import json

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM
from typer.testing import CliRunner

from tooldiff.cli import app

torch.set_num_threads(1)
CATEGORIES = ["simple", "multiple", "parallel", "parallel_multiple", "irrelevance"]


def _bench(args, tmp_path):
    out = tmp_path / "bench"
    result = CliRunner().invoke(app, ["bench", "bfcl", *args, "--out", str(out)])
    return result, out


def _read(out):
    summary = json.loads((out / "summary.json").read_text())
    lines = [json.loads(x) for x in (out / "examples.jsonl").read_text().splitlines()]
    return summary, lines


def test_bench_runs_on_the_organism_with_limit_20(tiny_organism, tmp_path):
    result, out = _bench(["--model", str(tiny_organism / "rl"), "--prompt-format", "organism", "--limit", "20",
                          "--max-new-tokens", "24", "--batch-size", "25"], tmp_path)
    assert result.exit_code == 0, result.output
    summary, lines = _read(out)
    assert list(summary["categories"]) == CATEGORIES
    for cat, s in summary["categories"].items():
        assert s["n_records"] == 20
        assert s["metrics"]["n"] + s["skipped_too_long"] == 20
        lo, hi = s["metrics"]["strict"]["ci95"]
        assert 0 <= lo <= s["metrics"]["strict"]["mean"] <= hi <= 1
    assert len(lines) == summary["overall"]["metrics"]["n"] == sum(s["metrics"]["n"] for s in summary["categories"].values())
    assert {line["category"] for line in lines} == set(CATEGORIES)
    assert all({"id", "output", "valid", "error_type", "lenient"} <= line.keys() for line in lines)


def _tiny_hf_model(tiny, tmp_path):
    tok = tiny.tokenizer()
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
                      initializer_range=0.3, eos_token_id=0, pad_token_id=1)
    model = Qwen2ForCausalLM(cfg).eval()
    model.generation_config.eos_token_id = 0
    model.save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    return tmp_path / "tiny"


def test_bench_runs_on_a_tiny_random_hf_model_in_both_formats_and_steers(tiny, tmp_path):
    model = _tiny_hf_model(tiny, tmp_path)
    common = ["--model", str(model), "--categories", "simple_python,irrelevance", "--limit", "3",
              "--max-new-tokens", "6", "--batch-size", "6"]
    outputs = {}
    for fmt in ("chat-template", "toolrl"):
        result, out = _bench([*common, "--prompt-format", fmt], tmp_path / fmt)
        assert result.exit_code == 0, result.output
        summary, lines = _read(out)
        assert summary["parse_format"] == ("toolrl" if fmt == "toolrl" else "hermes")
        assert summary["overall"]["metrics"]["n"] == 6
        outputs[fmt] = [line["output"] for line in lines]
    steering = tmp_path / "steer.json"
    steering.write_text(json.dumps([{"op": "add", "layer": 1, "vector": [1.0] * 32, "dose": 4.0}]))
    result, out = _bench([*common, "--prompt-format", "chat-template", "--steering", str(steering)], tmp_path / "s")
    assert result.exit_code == 0, result.output
    summary, lines = _read(out)
    assert summary["steering"][0]["op"] == "add"
    assert [line["output"] for line in lines] != outputs["chat-template"]


def test_bench_user_errors_are_one_line(tiny, tmp_path):
    model = _tiny_hf_model(tiny, tmp_path)
    for args, needle in [
        (["--categories", "simple,nope"], "unknown BFCL category"),
        (["--prompt-format", "xml"], "unknown prompt format"),
        (["--limit", "0"], "--limit"),
    ]:
        result, _ = _bench(["--model", str(model), *args], tmp_path)
        assert result.exit_code != 0 and needle in str(result.exception), (args, result.exception)
    steering = tmp_path / "feat.json"
    steering.write_text(json.dumps([{"op": "steer", "layer": 1, "feature": [3], "alpha": 4}]))
    result, _ = _bench(["--model", str(model), "--steering", str(steering)], tmp_path)
    assert "--crosscoder" in str(result.exception)
