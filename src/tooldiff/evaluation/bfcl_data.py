"""BFCL's public AST categories as prompt records (docs/architecture.md).

The data ships inside the `bfcl-eval` wheel (`bfcl_eval/data/BFCL_v*_<category>.json` and
`possible_answer/`). We only read those files: the package itself is never imported, because
its import pulls every model handler. Tools are converted to OpenAI JSON-schema form.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from tooldiff.errors import UserError, iter_jsonl
from tooldiff.evaluation.schema import bfcl_function_to_openai_tool

INSTALL_HINT = "pip install --no-deps bfcl-eval"
# Our category name -> the file stems it may have in a bfcl-eval release (newest naming first).
CATEGORY_FILES: dict[str, tuple[str, ...]] = {
    "simple": ("simple_python", "simple"),
    "multiple": ("multiple",),
    "parallel": ("parallel",),
    "parallel_multiple": ("parallel_multiple",),
    "irrelevance": ("irrelevance",),
    "live_simple": ("live_simple",),
    "live_multiple": ("live_multiple",),
    "live_parallel": ("live_parallel",),
    "live_parallel_multiple": ("live_parallel_multiple",),
    "live_irrelevance": ("live_irrelevance",),
}
ALIASES = {"simple_python": "simple"}
_VERSIONED = re.compile(r"^BFCL_v(\d+)_(.+)\.json$")


def bfcl_categories() -> list[str]:
    return list(CATEGORY_FILES)


def canonical_category(category: str) -> str:
    name = ALIASES.get(category, category)
    if name not in CATEGORY_FILES:
        raise UserError(f"unknown BFCL category {category!r}; valid: {', '.join(CATEGORY_FILES)}")
    return name


def bfcl_data_dir() -> Path:
    spec = importlib.util.find_spec("bfcl_eval")  # locates the package without importing it
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        data = Path(location) / "data"
        if data.is_dir():
            return data
    raise UserError(f"BFCL data not found: install it with `{INSTALL_HINT}`")


def _newest_file(directory: Path, stems: tuple[str, ...]) -> Path | None:
    """The newest BFCL_v<N>_<stem>.json for the first stem that exists."""
    for stem in stems:
        found = []
        for path in directory.glob(f"BFCL_v*_{stem}.json"):
            match = _VERSIONED.match(path.name)
            if match and match.group(2) == stem:
                found.append((int(match.group(1)), path))
        if found:
            return max(found)[1]
    return None


def _read_jsonl(path: Path) -> list[dict]:
    return [row for _, row in iter_jsonl(path, "BFCL data file")]


def load_bfcl_raw(category: str) -> tuple[list[dict], dict[str, list]]:
    """BFCL's own entries of a category and {id: ground truth} (empty for irrelevance)."""
    name = canonical_category(category)
    data = bfcl_data_dir()
    questions = _newest_file(data, CATEGORY_FILES[name])
    if questions is None:
        raise UserError(f"BFCL category {name!r} is not in the installed bfcl-eval data ({data}); "
                        f"reinstall it with `{INSTALL_HINT}`")
    entries = _read_jsonl(questions)
    if "irrelevance" in name:
        return entries, {}
    answers_file = data / "possible_answer" / questions.name
    if not answers_file.is_file():
        raise UserError(f"possible answers for {name!r} missing ({answers_file}); "
                        f"reinstall with `{INSTALL_HINT}`")
    answers = {row["id"]: row["ground_truth"] for row in _read_jsonl(answers_file)}
    missing = [entry["id"] for entry in entries if entry["id"] not in answers]
    if missing:
        raise UserError(f"BFCL {name!r}: {len(missing)} entries without a possible answer, "
                        f"e.g. {missing[0]}")
    return entries, answers


def _record(entry: dict, gold: list, kind: str) -> dict:
    messages = [message for turn in entry["question"] for message in turn]
    return {
        "id": entry["id"],
        "messages": messages,
        "tools": [bfcl_function_to_openai_tool(f) for f in entry["function"]],
        "gold": gold,
        "kind": kind,
    }


def load_bfcl(category: str) -> list[dict]:
    """Prompt records `{id, messages, tools, gold, kind}` of one BFCL category, in file order."""
    kind = canonical_category(category)
    entries, answers = load_bfcl_raw(kind)
    return [_record(entry, answers.get(entry["id"], []), kind) for entry in entries]
