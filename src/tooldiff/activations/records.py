"""Prompt records → token ids, labels and kinds: what the harvest feeds both models.

A record with `messages` is rendered through the chat template (`tooldiff.hf.render_prompt`),
which already contains any special tokens, so it is tokenized without adding more; generic
`text` records get the tokenizer's usual special tokens. Label = 1 when the record's `gold`
is non-empty (a tool call is needed), else 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tooldiff.errors import UserError, iter_jsonl
from tooldiff.hf import render_prompt


@dataclass(frozen=True)
class Prompt:
    index: int  # line order in the JSONL file
    id: str
    kind: str
    label: int
    token_ids: list[int]


def read_records(path: Path) -> list[dict]:
    """The prompt records of a JSONL file; a missing file, a bad line or no record is a UserError."""
    records = []
    for line_no, rec in iter_jsonl(path, "data file"):
        if not isinstance(rec, dict):
            raise UserError(f"{path}:{line_no}: a prompt record must be a JSON object")
        records.append(rec)
    if not records:
        raise UserError(f"data file {path} holds no records")
    return records


def tool_label(record: dict, where: str) -> int:
    gold = record.get("gold", [])
    if not isinstance(gold, list):
        raise UserError(f"{where}: field 'gold' must be a list of calls")
    return int(len(gold) > 0)


def tokenize_records(records: list[dict], tokenizer, source: Path) -> list[Prompt]:
    prompts = []
    for i, rec in enumerate(records):
        where = f"{source} record {rec.get('id', i)!r}"
        text = render_prompt(tokenizer, rec)
        ids = tokenizer(text, add_special_tokens="messages" not in rec)["input_ids"]
        if not ids:
            raise UserError(f"{where}: renders to zero tokens")
        kind = str(rec.get("kind", "generic" if "messages" not in rec else "unknown"))
        prompts.append(Prompt(i, str(rec.get("id", i)), kind, tool_label(rec, where), list(ids)))
    return prompts
