"""`tooldiff score`: score a predictions JSONL against a benchmark and print a summary.

Input problems never stop the run: a malformed line is reported with its line number, an
unknown or repeated id is reported and ignored, and a benchmark example without a prediction
is reported and counts as a failure ("missing_prediction").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tooldiff.errors import UserError, iter_jsonl
from tooldiff.evaluation.batch import error_counts, score_example, summarize_rows
from tooldiff.evaluation.bfcl_data import bfcl_categories, load_bfcl
from tooldiff.evaluation.parsing import FORMATS

MISSING = "missing_prediction"
_MAX_REPORTED = 20


@dataclass
class Predictions:
    outputs: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    malformed_lines: list[int] = field(default_factory=list)
    unknown_ids: list[str] = field(default_factory=list)
    duplicate_ids: list[str] = field(default_factory=list)


def load_bench(bench: str) -> list[dict]:
    """`bfcl:CATEGORY`, or a prompt-record JSONL file (e.g. the organism's test split)."""
    if bench.startswith("bfcl:"):
        return load_bfcl(bench.split(":", 1)[1])
    path = Path(bench)
    if path.suffix == ".jsonl" and path.is_file():
        return _read_records(path)
    raise UserError(f"unknown bench {bench!r}; use bfcl:CATEGORY with CATEGORY one of "
                    f"{', '.join(bfcl_categories())}, or a prompt-record .jsonl file")


def _read_records(path: Path) -> list[dict]:
    records = []
    for number, record in iter_jsonl(path, "prompt-record file"):
        if not isinstance(record, dict) or not {"id", "tools", "gold"} <= record.keys():
            raise UserError(f"{path}:{number}: a prompt record needs id, tools and gold")
        records.append(record)
    if not records:
        raise UserError(f"{path}: no prompt records")
    return records


def _line_problem(line: str) -> tuple[str | None, Any, str | None]:
    """(id, output, problem) of one predictions line."""
    try:
        item = json.loads(line)
    except json.JSONDecodeError as e:
        return None, None, f"not valid JSON ({e.msg})"
    if not isinstance(item, dict) or "id" not in item or "output" not in item:
        return None, None, 'expected an object with "id" and "output"'
    if not isinstance(item["output"], (str, dict)) and item["output"] is not None:
        return None, None, '"output" must be text or an OpenAI message object'
    return str(item["id"]), item["output"], None


def read_predictions(path: Path, known_ids: set[str]) -> Predictions:
    if not path.is_file():
        raise UserError(f"predictions file not found: {path}")
    found = Predictions()
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            example_id, output, problem = _line_problem(line)
            if problem:
                found.malformed_lines.append(number)
                found.problems.append(f"{path}:{number}: {problem}; line skipped")
            elif example_id not in known_ids:
                found.unknown_ids.append(example_id)
                found.problems.append(f"{path}:{number}: unknown id {example_id!r}; line skipped")
            elif example_id in found.outputs:
                found.duplicate_ids.append(example_id)
                found.problems.append(f"{path}:{number}: repeated id {example_id!r}; "
                                      "the first prediction is kept")
            else:
                found.outputs[example_id] = output
    return found


def _missing_row(record: dict) -> dict:
    return {"id": record["id"], "kind": record.get("kind"), "valid": False,
            "error_type": MISSING, "lenient": False, "made_call": False, "n_calls": 0,
            "needs_call": bool(record["gold"])}


def _report_problems(console: Console, problems: list[str]) -> None:
    for problem in problems[:_MAX_REPORTED]:
        console.print(f"[yellow]warning:[/] {problem}", highlight=False, soft_wrap=True)
    if len(problems) > _MAX_REPORTED:
        console.print(f"[yellow]warning:[/] ... and {len(problems) - _MAX_REPORTED} more "
                      "(all are listed in --out)", highlight=False)


def _summary_table(bench: str, metrics: dict, errors: dict[str, int]) -> Table:
    table = Table(title=f"{bench}: n={metrics['n']}, CI seed {metrics['seed']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name in ("strict", "lenient"):
        lo, hi = metrics[name]["ci95"]
        table.add_row(f"{name} correctness", f"{metrics[name]['mean']:.3f}  [{lo:.3f}, {hi:.3f}]")
    for name, value in metrics["trigger"].items():
        table.add_row(f"trigger {name}", f"{value:.3f}")
    table.add_row("calls per prompt", f"{metrics['calls_per_prompt']:.3f}")
    for error_type, count in list(errors.items())[:8]:
        table.add_row(f"[dim]error {error_type}[/]", str(count))
    return table


def run_score(bench: str, predictions: Path, fmt: str = "hermes", out: Path | None = None,
              strict: bool = True) -> dict:
    """Score `predictions` against `bench`, print a summary table, optionally write JSON."""
    if fmt not in FORMATS:
        raise UserError(f"unknown --format {fmt!r}; valid: {', '.join(FORMATS)}")
    records = load_bench(bench)
    found = read_predictions(Path(predictions), {str(r["id"]) for r in records})
    if not found.outputs:
        raise UserError(f"no usable prediction in {predictions} for {bench}")

    rows, missing = [], []
    for record in records:
        example_id = str(record["id"])
        if example_id in found.outputs:
            rows.append(score_example(record, found.outputs[example_id], fmt, strict))
        else:
            missing.append(example_id)
            rows.append(_missing_row(record))
    problems = found.problems + ([f"{len(missing)} of {len(records)} examples have no prediction "
                                  f"and count as failures, e.g. {', '.join(missing[:5])}"]
                                 if missing else [])
    _report_problems(Console(stderr=True), problems)

    metrics, errors = summarize_rows(rows), error_counts(rows)
    Console().print(_summary_table(bench, metrics, errors))
    summary = {
        "bench": bench, "format": fmt, "strict_parse": strict, "metrics": metrics,
        "error_types": errors,
        "input": {"predictions": str(predictions), "scored": len(rows) - len(missing),
                  "missing_ids": missing, "unknown_ids": found.unknown_ids,
                  "duplicate_ids": found.duplicate_ids, "malformed_lines": found.malformed_lines},
    }
    result = {"summary": summary,
              "per_example": [{"id": r["id"], "valid": r["valid"], "error_type": r["error_type"]}
                              for r in rows]}
    if out is not None:
        _write_json(Path(out), result)
    return result


def _write_json(path: Path, payload: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror}") from None
