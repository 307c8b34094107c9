"""score_outputs (metrics M) and the `tooldiff score` command, including bad input."""

import json
import subprocess
import sys

import pytest

from tooldiff.errors import UserError
from tooldiff.evaluation import gold_to_calls, load_bfcl, score_outputs


def hermes(calls) -> str:
    return "\n".join(f"<tool_call>\n{json.dumps(c)}\n</tool_call>" for c in calls)


TOOL = {"type": "function", "function": {"name": "add", "parameters": {
    "type": "object", "required": ["a", "b"],
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}}}
GOLD = [{"add": {"a": [2], "b": [3]}}]
RECORDS = [  # organism-style kinds: checked with category "auto"
    {"id": "c1", "kind": "call", "tools": [TOOL], "gold": GOLD},
    {"id": "c2", "kind": "call", "tools": [TOOL], "gold": GOLD},
    {"id": "c3", "kind": "call", "tools": [TOOL], "gold": GOLD},
    {"id": "n1", "kind": "not_offered", "tools": [TOOL], "gold": []},
    {"id": "n2", "kind": "chitchat", "tools": [], "gold": []},
]
OUTPUTS = [
    hermes([{"name": "add", "arguments": {"a": 2, "b": 3}}]),      # right
    hermes([{"name": "add", "arguments": {"a": 2, "b": 4}}]),      # right tool, wrong value
    "The answer is 5.",                                             # no call
    hermes([{"name": "add", "arguments": {"a": 1, "b": 1}}]),      # call where none is wanted
    "Hello!",                                                       # correctly no call
]


def test_score_outputs_rows_and_metrics():
    report = score_outputs(RECORDS, OUTPUTS, fmt="hermes", seed=3)
    rows = {r["id"]: r for r in report.rows}
    assert [rows[i]["valid"] for i in ("c1", "c2", "c3", "n1", "n2")] == [True, False, False, False, True]
    assert [rows[i]["lenient"] for i in ("c1", "c2", "c3", "n1", "n2")] == [True, True, False, False, True]
    assert rows["c2"]["error_type"] == "value_error:others"
    assert rows["n1"]["error_type"] == "irrelevance_error:decoder_success"
    assert set(rows["c1"]) >= {"id", "kind", "valid", "error_type", "lenient", "made_call", "n_calls"}

    m = report.metrics
    assert m["n"] == 5 and m["seed"] == 3
    assert m["strict"]["mean"] == pytest.approx(2 / 5)
    assert m["lenient"]["mean"] == pytest.approx(3 / 5)
    lo, hi = m["strict"]["ci95"]
    assert 0.0 <= lo <= 0.4 <= hi <= 1.0
    # made a call: c1 c2 n1; needs one: c1 c2 c3 -> TP 2, FP 1, FN 1, TN 1
    assert m["trigger"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "fpr": 0.5})
    assert m["calls_per_prompt"] == pytest.approx(3 / 5)
    assert report.error_counts["value_error:others"] == 1
    json.dumps(report.to_dict())  # everything is JSON-serializable


def test_strict_parsing_fails_a_malformed_block_lenient_skips_it():
    broken = "<tool_call>\n{oops}\n</tool_call>\n" + OUTPUTS[0]
    strict = score_outputs(RECORDS[:1], [broken], strict=True)
    lenient = score_outputs(RECORDS[:1], [broken], strict=False)
    assert strict.rows[0]["error_type"] == "ast_decoder:decoder_failed" and not strict.rows[0]["valid"]
    assert lenient.rows[0]["valid"]


def test_score_outputs_on_bfcl_ground_truth_in_all_three_formats():
    records = load_bfcl("parallel")[:20]
    calls = [gold_to_calls(r["gold"]) for r in records]
    toolrl = ["<think>.</think>\n<tool_call>\n" + "\n".join(
        json.dumps({"name": c["name"], "parameters": c["arguments"]}) for c in cs) + "\n</tool_call>"
        for cs in calls]
    openai = [{"role": "assistant", "content": None, "tool_calls": [
        {"type": "function", "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
        for c in cs]} for cs in calls]
    means = {fmt: score_outputs(records, outputs, fmt=fmt).metrics["strict"]["mean"]
             for fmt, outputs in (("hermes", [hermes(cs) for cs in calls]), ("toolrl", toolrl),
                                  ("openai", openai))}
    assert means["hermes"] == means["toolrl"] == means["openai"] >= 0.9


def test_score_outputs_length_mismatch_is_a_user_error():
    with pytest.raises(UserError, match="5 prompt records but 1 outputs"):
        score_outputs(RECORDS, OUTPUTS[:1])


# --- the command --------------------------------------------------------------------------
def tooldiff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tooldiff.cli", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def simple_records():
    return load_bfcl("simple")


def test_cli_scores_good_lines_and_reports_bad_ones(tmp_path, simple_records):
    right = [{"id": r["id"], "output": hermes(gold_to_calls(r["gold"]))} for r in simple_records[:3]]
    lines = [json.dumps(right[0]),
             '{"id": "simple_python_2", "output": "<tool_call>',   # line 2: broken JSON
             json.dumps(right[1]),
             json.dumps({"id": "no_such_id", "output": "x"}),       # line 4: unknown id
             json.dumps({"id": simple_records[3]["id"], "output": "I would rather not."}),
             ""]
    predictions = tmp_path / "pred.jsonl"
    predictions.write_text("\n".join(lines))
    out = tmp_path / "scores.json"
    result = tooldiff("score", "--bench", "bfcl:simple", "--predictions", str(predictions),
                      "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "pred.jsonl:2:" in result.stderr and "not valid JSON" in result.stderr
    assert "pred.jsonl:4:" in result.stderr and "no_such_id" in result.stderr
    assert "no prediction" in result.stderr  # the other examples are missing
    assert "strict correctness" in result.stdout

    payload = json.loads(out.read_text())
    per_example = {row["id"]: row for row in payload["per_example"]}
    assert len(per_example) == len(simple_records)
    assert per_example[right[0]["id"]]["valid"] and per_example[right[1]["id"]]["valid"]
    assert per_example[simple_records[3]["id"]]["error_type"] == "simple_function_checker:wrong_count"
    assert per_example["simple_python_2"]["error_type"] == "missing_prediction"
    summary = payload["summary"]
    assert summary["input"]["malformed_lines"] == [2]
    assert summary["input"]["unknown_ids"] == ["no_such_id"]
    assert summary["input"]["scored"] == 3
    assert summary["metrics"]["n"] == len(simple_records)
    assert summary["metrics"]["strict"]["mean"] == pytest.approx(2 / len(simple_records))


def test_cli_unknown_category_lists_valid_ones(tmp_path):
    predictions = tmp_path / "p.jsonl"
    predictions.write_text('{"id": "a", "output": ""}\n')
    result = tooldiff("score", "--bench", "bfcl:nonsense", "--predictions", str(predictions))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    for category in ("simple", "multiple", "parallel", "parallel_multiple", "irrelevance"):
        assert category in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3  # one message, maybe wrapped


@pytest.mark.parametrize("args, message", [
    (["--bench", "bfcl:simple", "--predictions", "missing.jsonl"], "predictions file not found"),
    (["--bench", "hf:whatever", "--predictions", "p.jsonl"], "unknown bench"),
    (["--bench", "bfcl:simple", "--predictions", "p.jsonl", "--format", "xml"], "unknown --format"),
    (["--bench", "bfcl:simple", "--predictions", "p.jsonl"], "no usable prediction"),
])
def test_cli_user_errors_exit_2_without_traceback(tmp_path, args, message):
    (tmp_path / "p.jsonl").write_text('{"id": "unknown", "output": ""}\n')
    result = subprocess.run([sys.executable, "-m", "tooldiff.cli", "score", *args],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_cli_scores_a_prompt_record_file_in_openai_format(tmp_path):
    bench = tmp_path / "test.jsonl"
    bench.write_text("\n".join(json.dumps(r) for r in RECORDS))
    message = {"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}}]}
    predictions = tmp_path / "p.jsonl"
    predictions.write_text("\n".join(json.dumps(line) for line in (
        {"id": "c1", "output": message}, {"id": "n2", "output": {"role": "assistant", "content": "hi"}},
        {"id": "c2", "output": {"role": "assistant", "content": "no"}})))
    out = tmp_path / "o.json"
    result = tooldiff("score", "--bench", str(bench), "--predictions", str(predictions),
                      "--format", "openai", "--out", str(out))
    assert result.returncode == 0, result.stderr
    valid = {row["id"]: row["valid"] for row in json.loads(out.read_text())["per_example"]}
    assert valid == {"c1": True, "c2": False, "c3": False, "n1": False, "n2": True}
