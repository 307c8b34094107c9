"""Run conditions on the TEST prompts, score them, and append one JSON line per condition.

The JSONL is the experiment's checkpoint: each line is flushed and fsynced when its condition
finishes, a torn last line (a crash mid-write) is ignored, and a rerun skips every key it finds.
Conditions that share a model and crosscoder are generated together as one batched run with
per-row interventions, which keeps the CPU busy with large batches.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tooldiff.evaluation import score_outputs
from tooldiff.experiment.conditions import MODEL_INDEX, Condition
from tooldiff.experiment.config import ExperimentConfig
from tooldiff.interventions import generate
from tooldiff.progress import new_progress

ROWS_PER_RUN = 1024  # prompts x conditions generated together: large batches, frequent checkpoints


def read_results(path: Path) -> dict[str, dict]:
    """Finished conditions by key; a torn final line from a crash is skipped."""
    done: dict[str, dict] = {}
    if not path.is_file():
        return done
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        done[entry["key"]] = entry
    return done


def _drop_torn_tail(path: Path) -> None:
    """Cut a partial last line left by a crash, so the next append starts on a line of its own."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[:data.rfind(b"\n") + 1])


def _append(path: Path, entry: dict) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(entry) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _score(cond: Condition, records: list[dict], outputs: list[str], cfg: ExperimentConfig) -> dict:
    report = score_outputs(records, outputs, fmt=cfg.parse_format, strict=True, seed=cfg.seed, n_boot=cfg.n_boot)
    return {"key": cond.key, **cond.describe(), "metrics": report.metrics,
            "valid": [int(r["valid"]) for r in report.rows],
            "made_call": [int(r["made_call"]) for r in report.rows],
            "examples": [{"id": r["id"], "output": o} for r, o in list(zip(records, outputs))[:3]]}


def _groups(conditions: list[Condition], n_prompts: int) -> list[list[Condition]]:
    """Chunks of conditions that can share one generation run (same model and crosscoder)."""
    per_run = max(1, ROWS_PER_RUN // max(1, n_prompts))
    by_key: dict[tuple, list[Condition]] = {}
    for c in conditions:
        by_key.setdefault((c.model, c.crosscoder), []).append(c)
    return [group[i:i + per_run] for group in by_key.values() for i in range(0, len(group), per_run)]


def run_conditions(conditions: list[Condition], models: dict, tokenizer, records: list[dict],
                   crosscoders: dict, results_path: Path, cfg: ExperimentConfig) -> dict[str, dict]:
    """Run every condition not yet in `results_path`; return all results by key."""
    _drop_torn_tail(results_path)
    done = read_results(results_path)
    todo = [c for c in dict.fromkeys(conditions) if c.key not in done]
    with new_progress() as bar:
        task = bar.add_task("experiment", total=len(todo))
        for chunk in _groups(todo, len(records)):
            model_name, cc_name = chunk[0].model, chunk[0].crosscoder
            prompts = [r for _ in chunk for r in records]
            per_row = [list(c.specs) for c in chunk for _ in records]
            outputs = generate(models[model_name], tokenizer, prompts, interventions=per_row,
                               crosscoder=crosscoders.get(cc_name), model_index=MODEL_INDEX[model_name],
                               max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size, progress=False)
            for i, cond in enumerate(chunk):
                entry = _score(cond, records, outputs[i * len(records):(i + 1) * len(records)], cfg)
                _append(results_path, entry)
                done[cond.key] = entry
                bar.advance(task)
    return done
