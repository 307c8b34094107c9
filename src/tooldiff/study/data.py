"""Study data sources -> prompt-record JSONL files (docs/architecture.md) for the stages.

A source is a local .jsonl or .parquet file, or an HF `datasets` path (downloaded, or read from
the local datasets cache when offline). Rows are prompt records or, with `text_field`, generic
text. Records without a `kind` get the experiment's request kinds: a call is needed (`call`),
tools are offered but none fits (`not_offered`), no tools at all (`chitchat`).
"""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path
from typing import Iterable, Iterator

from tooldiff.errors import UserError, iter_jsonl
from tooldiff.study.config import DataSource, StudyConfig


def _local_rows(path: Path) -> Iterator[dict]:
    if path.suffix == ".jsonl":
        yield from (row for _, row in iter_jsonl(path, "data file"))
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=4096):
            yield from batch.to_pylist()
    else:
        raise UserError(f"data source {path}: use a .jsonl or .parquet file, or an HF datasets path")


def _hub_rows(src: DataSource) -> Iterator[dict]:
    import datasets

    try:
        # Streaming reads only the rows we need (FineWeb is terabytes).
        yield from datasets.load_dataset(src.source, name=src.name, split=src.split, streaming=True)
    except (FileNotFoundError, ConnectionError, ValueError) as e:
        raise UserError(f"cannot read HF dataset {src.source!r} (split {src.split!r}): "
                        f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def source_rows(src: DataSource, root: Path) -> Iterable[dict]:
    """The rows of one source; a local file's relative path resolves against `root`."""
    local = Path(src.source).expanduser()
    local = local if local.is_absolute() else root / local
    if local.suffix in (".jsonl", ".parquet"):
        if not local.is_file():
            raise UserError(f"data source {local} does not exist")
        rows = _local_rows(local)
    else:
        rows = _hub_rows(src)
    return islice(rows, src.skip, None if src.limit is None else src.skip + src.limit)


def request_kind(record: dict) -> str:
    if record.get("gold"):
        return "call"
    return "not_offered" if record.get("tools") else "chitchat"


def to_record(row: dict, src: DataSource, index: int, prefix: str) -> dict:
    """One source row as a prompt record (or a generic text record)."""
    where = f"{src.source} row {src.skip + index}"
    if src.text_field is not None:
        if not isinstance(row.get(src.text_field), str):
            raise UserError(f"{where}: no text column {src.text_field!r}")
        return {"id": f"{prefix}-{index:06d}", "text": row[src.text_field], "kind": src.kind or "generic"}
    if "messages" not in row and "text" not in row:
        raise UserError(f"{where}: neither a prompt record (messages) nor text; set text_field for raw text")
    record = dict(row)
    record.setdefault("id", f"{prefix}-{index:06d}")
    if "messages" in record:
        record.setdefault("tools", [])
        record.setdefault("gold", [])
    record["kind"] = src.kind or record.get("kind") or ("generic" if "messages" not in record else request_kind(record))
    return record


def write_split(cfg: StudyConfig, split: str, out: Path) -> Path:
    """Every source of `split` (train | calibration | test) as one prompt-record JSONL."""
    sources: list[DataSource] = getattr(cfg.data, split)
    out.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(out, "w", encoding="utf-8") as fh:
        for s, src in enumerate(sources):
            for i, row in enumerate(source_rows(src, cfg.work_path("."))):
                fh.write(json.dumps(to_record(row, src, i, f"{split}{s}")) + "\n")
                n += 1
    if n == 0:
        raise UserError(f"data.{split}: the sources hold no rows")
    return out
