"""Crash-safe writes for the organism directory.

Every output (a data directory, a model directory, organism.json) is written under a temporary
name inside DIR and renamed into place only when complete, so an interrupted build never leaves
a directory that loads but is half-written. A stage is done when its marker (written after the
rename) names the current build hash; a rerun redoes the first stage that is not.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path

from tooldiff.errors import iter_jsonl

STAGES_DIR = ".stages"
TMP_PREFIX = ".tmp-"


@contextmanager
def atomic_dir(final: Path):
    """Yield an empty temporary directory that replaces `final` once the block succeeds."""
    tmp = final.parent / f"{TMP_PREFIX}{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def write_json_atomic(path: Path, payload: dict) -> None:
    tmp = path.parent / f"{TMP_PREFIX}{path.name}-{uuid.uuid4().hex[:8]}"
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    """Every row of a JSONL file the build wrote; a missing or damaged file is one UserError line."""
    return [row for _, row in iter_jsonl(path, "organism file")]


def remove_stale_temporaries(root: Path) -> None:
    """Leftovers of an interrupted build: never complete, never loaded, safe to delete."""
    for entry in root.glob(f"{TMP_PREFIX}*"):
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


class StageMarkers:
    """`DIR/.stages/<stage>.json` = {"hash", "seconds", ...}: which stages of which build are done."""

    def __init__(self, root: Path, build_hash: str):
        self.dir = root / STAGES_DIR
        self.build_hash = build_hash

    def get(self, stage: str) -> dict | None:
        path = self.dir / f"{stage}.json"
        if not path.is_file():
            return None
        try:
            marker = json.loads(path.read_text())
        except json.JSONDecodeError:
            return None
        return marker if marker.get("hash") == self.build_hash else None

    def mark(self, stage: str, seconds: float, **extra) -> dict:
        self.dir.mkdir(parents=True, exist_ok=True)
        marker = {"hash": self.build_hash, "seconds": round(seconds, 2), **extra}
        write_json_atomic(self.dir / f"{stage}.json", marker)
        return marker

    def any_for_this_build(self) -> bool:
        return self.dir.is_dir() and any(self.get(p.stem) for p in self.dir.glob("*.json"))
