"""Pages as files: each one a small HTML shell with its data embedded, plus the shipped assets.

A page must open from `file://` with no network: a browser refuses `fetch` of local files, so
each page carries its data inline (`<script type="application/json">`) and loads the package's
own script and style by relative path (no CDN). The directory is written beside its final place
and renamed into it when complete, so an interrupted write never leaves half a dashboard.
"""

from __future__ import annotations

import html
import json
import math
import os
import shutil
import uuid
from importlib import resources
from pathlib import Path

ASSETS = ("dashboard.css", "dashboard.js", "live.js")
INDEX, LIVE = "index.html", "live.html"


def _json_default(value):
    raise TypeError(f"not JSON: {type(value).__name__}")


def _clean(value):
    """NaN and inf as null: JSON has no such numbers, and a browser's parser refuses them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def embed(data: dict) -> str:
    """JSON safe inside a <script> element (no '</' can close it early); NaN and inf become null."""
    try:
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default)
    except ValueError:  # a NaN somewhere (a ratio over nothing): the slow path
        text = json.dumps(_clean(data), separators=(",", ":"), ensure_ascii=False, default=_json_default)
    return text.replace("</", "<\\/").replace("<!--", "\\u003c!--")


def shell(title: str, data: dict, root: str, scripts: tuple[str, ...] = ("dashboard.js",)) -> str:
    tags = "".join(f'<script src="{root}assets/{s}"></script>' for s in scripts)
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<link rel="icon" href="data:,"><link rel="stylesheet" href="{root}assets/dashboard.css"></head>\n'
            f'<body><div id="app"></div>\n<script id="data" type="application/json">{embed(data)}</script>\n'
            f'{tags}</body></html>\n')


class SiteWriter:
    """Writes into a temporary sibling of `out`; `commit` swaps it into place."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.out.parent / f".tmp-{self.out.name}-{uuid.uuid4().hex[:8]}"
        (self.tmp / "latents").mkdir(parents=True)
        (self.tmp / "assets").mkdir()
        package = resources.files("tooldiff.report.dashboard") / "assets"
        for name in ASSETS:
            (self.tmp / "assets" / name).write_bytes((package / name).read_bytes())

    def page(self, relative: str, title: str, data: dict, scripts: tuple[str, ...] = ("dashboard.js",)) -> None:
        depth = relative.count("/")
        (self.tmp / relative).write_text(shell(title, data, "../" * depth, scripts), encoding="utf-8")

    def commit(self) -> Path:
        if self.out.exists():
            old = self.out.parent / f".old-{self.out.name}-{uuid.uuid4().hex[:8]}"
            os.replace(self.out, old)
            os.replace(self.tmp, self.out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.tmp, self.out)
        return self.out

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def size_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in Path(directory).rglob("*") if p.is_file())
