"""`tooldiff bench bfcl`: generate on BFCL's AST categories and score with BFCL-AST semantics.

Per category: the first `limit` records (file order), rendered in the chosen prompt format,
generated greedily with `interventions.generate_completions` (optionally steered), parsed with
that format's parser and scored by `evaluation.score_outputs`. A prompt that does not fit the
model's context (with room for the new tokens) is not run; it is counted in the summary as
`skipped_too_long` rather than silently scored.

Writes OUT/examples.jsonl (one line per example: category, id, output, score row) and
OUT/summary.json (metrics M with bootstrap CIs per category and over all of them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from rich.console import Console
from rich.table import Table

from tooldiff import hf
from tooldiff.errors import UserError
from tooldiff.evaluation import load_bfcl, score_outputs, summarize_rows
from tooldiff.evaluation.batch import error_counts
from tooldiff.evaluation.bfcl_data import canonical_category
from tooldiff.prompts import PARSE_FORMAT, check_prompt_format, render_record

DEFAULT_CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance")


def parse_categories(text: str) -> list[str]:
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names:
        raise UserError("--categories is empty; give e.g. simple_python,multiple,irrelevance")
    for name in names:
        canonical_category(name)  # a UserError naming the valid ones
    return list(dict.fromkeys(names))


def load_steering(steering: Optional[Path], crosscoder: Optional[Path], device: str) -> tuple[list, Any]:
    """The interventions of a steering file (read as the server reads its --profile, under the
    library's policy: every op) and the crosscoder they need; a feature-based intervention without
    a crosscoder is a user error."""
    from tooldiff.interventions import read_steering_file

    specs = list(read_steering_file(Path(steering))) if steering is not None else []
    cc = None
    if crosscoder is not None:
        from tooldiff.crosscoder import Crosscoder

        cc = Crosscoder.load(crosscoder, device=device)
    if any(s.uses_crosscoder for s in specs) and cc is None:
        raise UserError("the steering file names crosscoder features or a reconstruct; pass --crosscoder DIR")
    return specs, cc


def context_limit(model: Any) -> Optional[int]:
    cfg = model.config
    return getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)


def _fits(tokenizer: Any, texts: list[str], limit: Optional[int], max_new_tokens: int) -> list[bool]:
    if limit is None:
        return [True] * len(texts)
    return [len(tokenizer(t, add_special_tokens=False)["input_ids"]) + max_new_tokens <= limit for t in texts]


def bench_category(model: Any, tokenizer: Any, category: str, prompt_format: str, specs: list, cc: Any,
                   model_index: int, limit: Optional[int], max_new_tokens: int, batch_size: int,
                   seed: int, n_boot: int) -> tuple[dict, list[dict]]:
    """(summary, per-example lines) of one BFCL category."""
    from tooldiff.interventions import generate_completions

    records = load_bfcl(category)[:limit] if limit else load_bfcl(category)
    texts = [render_record(tokenizer, r, prompt_format) for r in records]
    fits = _fits(tokenizer, texts, context_limit(model), max_new_tokens)
    kept = [r for r, ok in zip(records, fits) if ok]
    if not kept:
        raise UserError(f"bfcl {category}: no prompt fits the model's context of {context_limit(model)} tokens "
                        f"with {max_new_tokens} new tokens")
    completions = generate_completions(model, tokenizer, [t for t, ok in zip(texts, fits) if ok], specs or None, cc,
                                       model_index, max_new_tokens=max_new_tokens, batch_size=batch_size)
    outputs = [c.text for c in completions]
    report = score_outputs(kept, outputs, fmt=PARSE_FORMAT[prompt_format], strict=True, seed=seed, n_boot=n_boot)
    summary = {"metrics": report.metrics, "error_counts": report.error_counts,
               "n_records": len(records), "skipped_too_long": len(records) - len(kept)}
    lines = [{"category": category, "output": o, "finish_reason": c.finish_reason, **row}
             for row, o, c in zip(report.rows, outputs, completions)]
    return summary, lines


def print_summary(summary: dict, console: Console) -> None:
    table = Table(title=f"BFCL on {summary['model']} ({summary['prompt_format']})")
    for col in ("category", "n", "strict [95% CI]", "lenient [95% CI]", "call F1", "FPR", "skipped"):
        table.add_column(col, justify="left" if col == "category" else "right")
    for name, s in [*summary["categories"].items(), ("all", summary["overall"])]:
        m = s["metrics"]
        cell = {k: f"{m[k]['mean']:.3f} [{m[k]['ci95'][0]:.3f}, {m[k]['ci95'][1]:.3f}]" for k in ("strict", "lenient")}
        table.add_row(name, str(m["n"]), cell["strict"], cell["lenient"], f"{m['trigger']['f1']:.3f}",
                      f"{m['trigger']['fpr']:.3f}", str(s.get("skipped_too_long", "")))
    console.print(table)


def run_bench_bfcl(model: str, categories: list[str], out: Path, prompt_format: str = "chat-template",
                   steering: Optional[Path] = None, crosscoder: Optional[Path] = None, model_index: int = 0,
                   limit: Optional[int] = None, max_new_tokens: int = 200, batch_size: int = 8,
                   device: str = "cpu", dtype: str = "float32", seed: int = 0, n_boot: int = 2000) -> dict:
    """Run and score every category; write examples.jsonl and summary.json under `out`."""
    check_prompt_format(prompt_format)
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be >= 1, got {limit}")
    categories = [canonical_category(c) for c in categories]
    for c in categories:
        load_bfcl(c)  # data present? fail before loading any weights
    specs, cc = load_steering(steering, crosscoder, device)
    tokenizer = hf.load_tokenizer(model)
    lm = hf.load_model(model, device=device, dtype=dtype)
    if cc is not None and cc.d_model != hf.hidden_size(lm):
        raise UserError(f"crosscoder d_model={cc.d_model} does not match the model's hidden size {hf.hidden_size(lm)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    per_category, all_lines = {}, []
    for category in categories:
        per_category[category], lines = bench_category(lm, tokenizer, category, prompt_format, specs, cc, model_index,
                                                       limit, max_new_tokens, batch_size, seed, n_boot)
        all_lines += lines
    summary = {"model": str(model), "prompt_format": prompt_format, "parse_format": PARSE_FORMAT[prompt_format],
               "steering": [s.to_json() for s in specs], "crosscoder": str(crosscoder) if crosscoder else None,
               "limit": limit, "max_new_tokens": max_new_tokens, "seed": seed, "categories": per_category,
               "overall": {"metrics": summarize_rows(all_lines, seed, n_boot), "error_counts": error_counts(all_lines)}}
    with open(out / "examples.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(line) + "\n" for line in all_lines)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print_summary(summary, Console())
    return summary
