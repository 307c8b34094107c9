"""Score a batch of generations against their prompt records and summarize them as metrics M.

Per example:
- `valid` (strict): BFCL-AST check of the parsed calls; in strict parsing a malformed call
  entry fails the example ("ast_decoder:decoder_failed");
- `lenient`: the paper's metric on prompts that need a call (some call names an offered tool);
  on prompts that need none, the same as strict: no call made;
- `made_call`: the output attempts a call (a parsed or a malformed call entry);
- needs a call = the record's gold answer is non-empty.

A record whose `kind` is a BFCL category is checked with that category's rules; any other kind
(the organism's call / not_offered / chitchat) uses category "auto".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from tooldiff.errors import UserError
from tooldiff.evaluation.ast_check import AST_CATEGORIES, check_ast
from tooldiff.evaluation.metrics import lenient_correct, trigger_metrics
from tooldiff.evaluation.parsing import parse_calls
from tooldiff.evaluation.stats import bootstrap_ci

DECODER_FAILED = "ast_decoder:decoder_failed"


@dataclass
class ScoreReport:
    rows: list[dict]
    metrics: dict
    error_counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"metrics": self.metrics, "error_counts": self.error_counts, "rows": self.rows}


def record_category(record: dict) -> str:
    kind = record.get("kind")
    return kind if kind in AST_CATEGORIES else "auto"


def score_example(record: dict, output, fmt: str = "hermes", strict: bool = True) -> dict:
    """One row `{id, kind, valid, error_type, lenient, made_call, n_calls, needs_call}`."""
    for key in ("id", "tools", "gold"):
        if key not in record:
            raise UserError(f"prompt record {record.get('id', '?')!r} lacks {key!r}")
    parsed = parse_calls(output, fmt=fmt, strict=strict)
    needs_call = bool(record["gold"])
    if not parsed.ok:
        valid, error_type = False, DECODER_FAILED
    else:
        result = check_ast(parsed.calls, record["gold"], record["tools"], record_category(record))
        valid, error_type = result.valid, result.error_type
    made_call = bool(parsed.calls) or parsed.malformed > 0
    lenient = lenient_correct(parsed.calls, record["tools"]) if needs_call else not made_call
    return {"id": record["id"], "kind": record.get("kind"), "valid": valid,
            "error_type": error_type, "lenient": lenient, "made_call": made_call,
            "n_calls": len(parsed.calls), "needs_call": needs_call}


def _mean_with_ci(values: list[float], n_boot: int, seed: int) -> dict:
    mean, lo, hi = bootstrap_ci(values, n_boot=n_boot, seed=seed)
    return {"mean": mean, "ci95": [lo, hi]}


def summarize_rows(rows: Sequence[dict], seed: int = 0, n_boot: int = 2000) -> dict:
    """Metrics M of SPEC section 7 from per-example rows (plus the bootstrap seed)."""
    if not rows:
        raise UserError("nothing to score: no examples")
    return {
        "n": len(rows),
        "strict": _mean_with_ci([float(r["valid"]) for r in rows], n_boot, seed),
        "lenient": _mean_with_ci([float(r["lenient"]) for r in rows], n_boot, seed),
        "trigger": trigger_metrics([r["made_call"] for r in rows], [r["needs_call"] for r in rows]),
        "calls_per_prompt": sum(r["n_calls"] for r in rows) / len(rows),
        "seed": seed,
    }


def error_counts(rows: Sequence[dict]) -> dict[str, int]:
    counts = Counter(r["error_type"] for r in rows if not r["valid"])
    return dict(counts.most_common())


def score_outputs(records: Sequence[dict], outputs: Sequence, fmt: str = "hermes",
                  strict: bool = True, seed: int = 0, n_boot: int = 2000) -> ScoreReport:
    """Score raw generations (text or OpenAI messages), given in the order of `records`."""
    if len(records) != len(outputs):
        raise UserError(f"{len(records)} prompt records but {len(outputs)} outputs")
    rows = [score_example(record, output, fmt, strict) for record, output in zip(records, outputs)]
    return ScoreReport(rows=rows, metrics=summarize_rows(rows, seed, n_boot),
                       error_counts=error_counts(rows))
