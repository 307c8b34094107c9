"""Apply the study's prompt format to a split before the stages read it.

The stages render `messages` records with the tokenizer's chat template (`hf.render_prompt`).
For the `toolrl` format, a record is rendered here once (ToolRL's system prompt, see
`tooldiff.prompts`) and kept as `text` with its id, tools, gold and kind, so the harvest, the
feature ranking and the experiment all see exactly the prompt ToolRL was trained on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tooldiff.prompts import check_prompt_format, render_toolrl


def rendered_record(record: dict, tokenizer: Any) -> dict:
    if "messages" not in record:
        return record
    out = {k: v for k, v in record.items() if k != "messages"}
    out["text"] = render_toolrl(tokenizer, record["messages"], record.get("tools") or None)
    return out


def render_split(path: Path, tokenizer: Any, prompt_format: str) -> Path:
    """`path` itself for template formats; a `*.toolrl.jsonl` beside it for ToolRL."""
    if check_prompt_format(prompt_format) != "toolrl":
        return path
    target = path.with_suffix(".toolrl.jsonl")
    with open(path, encoding="utf-8") as src, open(target, "w", encoding="utf-8") as dst:
        for line in src:
            if line.strip():
                dst.write(json.dumps(rendered_record(json.loads(line), tokenizer)) + "\n")
    return target
