"""The shipped organism: the default pair as package data, the same on every machine.

Float sums run in another order on another CPU, and the organism's build amplifies that: the
same seed and command built twins tens of points apart on two machines
(docs/notes/2026-12-05-organism.md). So the default organism (preset default, seed 0, the full
twin) and its rank1 positive-control twin ship inside the package, built once, and `tooldiff
demo` installs them instead of building. `tooldiff organism --out DIR --ship` builds them (or reuses a finished
build in DIR and DIR-rank1) and writes this folder again; tests/test_shipped.py fails when the
recipe's code has changed since, so a recipe change lands only with a refreshed pair.

Layout of `shipped/` (every file is listed with its sha256 in MANIFEST.json and checked on
install):
    organism.json, tokenizer/, base/, rl/, eval/
                                       the full organism as a build writes it (eval outputs gzipped)
    data/<split>.jsonl.gz              the prompt splits the study reads
    rank1/organism.json, rank1/eval/   the positive control's record
    rank1/rl/changed.safetensors       the tensors of its twin that differ from the base (RL may
                                       change one rank-1 update of one layer: 0.4 MB, not 5 MB)
    rank1/rl/planted_direction.safetensors and its config and tokenizer files
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

from tooldiff.errors import UserError
from tooldiff.organism.build import SHARED_STAGES, read_info
from tooldiff.organism.info import INFO_FILE
from tooldiff.organism.checkpoints import CHECKPOINTS_DIR
from tooldiff.organism.store import TMP_PREFIX, StageMarkers, atomic_dir, write_json_atomic

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
MANIFEST = "MANIFEST.json"
SHIPPED_PRESET, SHIPPED_SEED = "default", 0
SHIPPED_VARIANTS = ("full", "rank1")
CHANGED_FILE = "changed.safetensors"
MODEL_FILE = "model.safetensors"
GZIPPED = ("data", "eval")  # folders whose .jsonl files ship gzipped
REBUILD_HINT = "reinstall tooldiff, or build the organism from its recipe with `tooldiff demo --rebuild`"


def is_shipped(preset: str, seed: int) -> bool:
    return preset == SHIPPED_PRESET and seed == SHIPPED_SEED


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_files(source: Path = SHIPPED_DIR) -> dict[str, Path]:
    """{relative path: file} of the shipped pair, each checked against MANIFEST.json."""
    try:
        manifest = json.loads((source / MANIFEST).read_text())["files"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        raise UserError(f"the shipped organism's {source / MANIFEST} is missing or unreadable; {REBUILD_HINT}") from None
    files = {}
    for rel, digest in manifest.items():
        path = source / rel
        if not path.is_file():
            raise UserError(f"the shipped organism's file {path} is missing; {REBUILD_HINT}")
        if _sha256(path) != digest:
            raise UserError(f"the shipped organism's file {path} is corrupted (sha256 differs from {MANIFEST}); "
                            f"{REBUILD_HINT}")
        files[rel] = path
    return files


# --- install: shipped/ -> an organism directory ---------------------------------------------------
def _copy_tree(files: dict[str, Path], prefix: str, dest: Path) -> None:
    """Copy the files under `prefix` into `dest`, gunzipping the .jsonl.gz ones."""
    for rel, path in files.items():
        if not rel.startswith(prefix):
            continue
        target = dest / rel[len(prefix):]
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".jsonl.gz"):
            target.with_suffix("").write_bytes(gzip.decompress(path.read_bytes()))
        else:
            shutil.copyfile(path, target)


def _write_rank1_model(base_dir: Path, changed: Path, out_file: Path) -> None:
    """The rank1 twin's weights: the base's, with the tensors its RL changed."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(base_dir / MODEL_FILE)) | load_file(str(changed))
    save_file(tensors, str(out_file), metadata={"format": "pt"})


def _install_one(files: dict[str, Path], variant: str, dest: Path) -> None:
    with atomic_dir(dest) as tmp:
        if variant == "full":
            _copy_tree({r: p for r, p in files.items() if not r.startswith("rank1/")}, "", tmp)
        else:
            _copy_tree(files, "data/", tmp / "data")
            _copy_tree(files, "base/", tmp / "base")
            _copy_tree(files, "rank1/", tmp)
            _write_rank1_model(tmp / "base", tmp / "rl" / CHANGED_FILE, tmp / "rl" / MODEL_FILE)
            (tmp / "rl" / CHANGED_FILE).unlink()
        (tmp / MANIFEST).unlink(missing_ok=True)
        _mark_shared_stages(tmp)


def _shared_stage_markers(record: dict) -> dict[str, dict]:
    """What a build's markers for data, tokenizer and base held, read back from the organism.json
    that build.write_info made of them (the inverse of its `data` and `model` blocks)."""
    model = record["model"]
    return {
        "data": {k: v for k, v in record["data"].items() if k not in ("hash", "seconds", "shared_from", "generic_note")},
        "tokenizer": {"vocab": model["vocab"]},
        "base": {"params": model["params"], "tokens": model["pretrain_tokens"],
                 "final_loss": model["pretrain_final_loss"], "threads": record["torch_threads"]["base"],
                 "extra_drill_steps": model["extra_drill_steps"],
                 "forced_calls_calibration": model["forced_calls_calibration"],
                 "forced_calls_by_tool": model["forced_calls_by_tool"]},
    }


def _mark_shared_stages(root: Path) -> None:
    """Stage markers for what the install holds as a build would (data, tokenizer, base), so that
    `tooldiff organism --shared-from` can take its base (a sham or rank1 twin of the shipped base)."""
    record = json.loads((root / INFO_FILE).read_text())
    markers = StageMarkers(root, record["config_hash"])
    for stage, extra in _shared_stage_markers(record).items():
        if (root / stage).is_dir():
            markers.mark(stage, record["build_seconds"][stage], installed="shipped", **extra)


def install_shipped(dest: Path, variant: str = "full", source: Path = SHIPPED_DIR) -> Path:
    """Write the shipped organism (`full` or `rank1`) into `dest` as a finished build; returns
    `dest`. A `dest` that already holds the same organism is kept."""
    if variant not in SHIPPED_VARIANTS:
        raise UserError(f"the shipped pair holds the variants {' and '.join(SHIPPED_VARIANTS)}, not {variant!r}: "
                        f"build it with `tooldiff organism --out DIR --variant {variant}`")
    files = verified_files(source)
    record = json.loads(files[INFO_FILE if variant == "full" else f"rank1/{INFO_FILE}"].read_text())
    held = read_info(dest)
    if held is not None and held.get("config_hash") == record["config_hash"] and \
            held.get("recipe") == record.get("recipe") and (dest / "rl" / MODEL_FILE).is_file():
        return dest
    if dest.exists() and any(dest.iterdir()):
        raise UserError(f"{dest} already holds something other than the shipped {variant} organism; "
                        "choose another --out or empty it")
    _install_one(files, variant, dest)
    return dest


# --- ship: finished builds -> shipped/ --------------------------------------------------------------
def _changed_tensors(base_file: Path, twin_file: Path) -> dict:
    from safetensors.torch import load_file

    base, twin = load_file(str(base_file)), load_file(str(twin_file))
    if set(base) != set(twin):
        raise UserError(f"{twin_file} and {base_file} hold different tensors: not a rank1 twin of that base")
    return {k: v for k, v in twin.items() if not (v.shape == base[k].shape and bool((v == base[k]).all()))}


def _gzip_jsonl_tree(src: Path, dest: Path) -> None:
    for path in sorted(src.rglob("*")):
        if path.is_file():
            target = dest / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            if path.suffix == ".jsonl":
                # mtime 0: the same bytes (and sha256) from the same file on every refresh
                target.with_name(target.name + ".gz").write_bytes(gzip.compress(path.read_bytes(), mtime=0))
            else:
                shutil.copyfile(path, target)


def _check_pair(full: Path, rank1: Path) -> tuple[dict, dict]:
    from tooldiff.organism.recipe import changed_modules, recipe

    infos = (read_info(full), read_info(rank1))
    for path, info, variant in ((full, infos[0], "full"), (rank1, infos[1], "rank1")):
        if info is None or info.get("variant") != variant:
            raise UserError(f"{path} holds no finished {variant} organism")
        if info.get("preset") != SHIPPED_PRESET or info.get("seed") != SHIPPED_SEED:
            raise UserError(f"{path} is preset {info.get('preset')!r}, seed {info.get('seed')}; the shipped pair is "
                            f"preset {SHIPPED_PRESET!r}, seed {SHIPPED_SEED}")
        current = recipe(info["config"])
        if info.get("recipe", {}).get("fingerprint") != current["fingerprint"]:
            stale = ", ".join(changed_modules(info.get("recipe", {}), current)) or "the config"
            raise UserError(f"{path} was built from another recipe (changed since: {stale}); rebuild it with --force")
    if _sha256(full / "base" / MODEL_FILE) != _sha256(rank1 / "base" / MODEL_FILE):
        raise UserError(f"{rank1} was not built on {full}'s base")
    return infos


def ship(full: Path, rank1: Path, dest: Path = SHIPPED_DIR) -> Path:
    """Write `dest` (shipped/) from a finished full build and its rank1 twin; returns `dest`."""
    from safetensors.torch import save_file

    _check_pair(full, rank1)
    with atomic_dir(dest) as tmp:
        for name in ("tokenizer", "base", "rl", "eval", "data"):
            if name in GZIPPED:
                _gzip_jsonl_tree(full / name, tmp / name)
            else:  # RL's saved checkpoints stay with the build (70 MB)
                shutil.copytree(full / name, tmp / name, ignore=shutil.ignore_patterns(CHECKPOINTS_DIR))
        shutil.copyfile(full / INFO_FILE, tmp / INFO_FILE)
        (tmp / "rank1" / "rl").mkdir(parents=True)
        shutil.copyfile(rank1 / INFO_FILE, tmp / "rank1" / INFO_FILE)
        _gzip_jsonl_tree(rank1 / "eval", tmp / "rank1" / "eval")
        for path in (rank1 / "rl").iterdir():
            if path.name != MODEL_FILE:
                shutil.copyfile(path, tmp / "rank1" / "rl" / path.name)
        save_file(_changed_tensors(full / "base" / MODEL_FILE, rank1 / "rl" / MODEL_FILE),
                  str(tmp / "rank1" / "rl" / CHANGED_FILE), metadata={"format": "pt"})
        files = sorted(p for p in tmp.rglob("*") if p.is_file() and not p.name.startswith(TMP_PREFIX))
        write_json_atomic(tmp / MANIFEST, {"format": 1, "files": {
            str(p.relative_to(tmp)): _sha256(p) for p in files}})
    return dest


def refresh_shipped(out: Path, force: bool = False, threads: int = 1, dest: Path = SHIPPED_DIR) -> Path:
    """Build (or reuse) the default seed-0 organism in `out` and its rank1 twin in `out`-rank1,
    then ship them (the documented refresh: `tooldiff organism --out DIR --ship --threads 2`)."""
    from tooldiff.organism.build import build_organism

    full = build_organism(out, SHIPPED_PRESET, SHIPPED_SEED, "full", force=force, threads=threads)
    rank1 = build_organism(out.with_name(out.name + "-rank1"), SHIPPED_PRESET, SHIPPED_SEED, "rank1", force=force,
                           shared_from=full, threads=threads)
    return ship(full, rank1, dest)
