"""The configs that ship inside the package, and the one place that resolves them by name.

They live in the package (not in the repository's top level) so that an installed tooldiff — a
wheel, no checkout — still has its demo sweeps and the paper's study. Every option that takes a
config file also accepts a shipped name: `sweep-demo`, `qwen2.5-3b-toolrl`, ...
"""

from __future__ import annotations

from pathlib import Path

from tooldiff.errors import UserError

HOME = Path(__file__).resolve().parent


def shipped_names() -> list[str]:
    """The names of the shipped configs (file names without `.toml`)."""
    return sorted(p.stem for p in HOME.glob("*.toml"))


def is_shipped(path: Path) -> bool:
    """Whether `path` is one of the configs shipped in the package."""
    return path.resolve().parent == HOME


def shipped(name: str) -> Path:
    """The path of the shipped config `name` (with or without `.toml`)."""
    path = HOME / f"{name.removesuffix('.toml')}.toml"
    if Path(name).name != name or not path.is_file():
        raise UserError(f"no shipped config named {name!r}; shipped: {', '.join(shipped_names())}")
    return path


def resolve(value: str | Path) -> Path:
    """A config argument: an existing file as given, else the shipped config of that name."""
    path = Path(value).expanduser()
    if path.is_file():
        return path
    name = str(value)
    if name in shipped_names() or name.removesuffix(".toml") in shipped_names():
        return shipped(name)
    raise UserError(f"config {value} is neither a file nor a shipped config ({', '.join(shipped_names())})")
