"""The recipe fingerprint: what an organism build depends on, as one hash.

A shipped organism is only the default if the code would build it again. The fingerprint covers
the preset's config (which already holds the tool world's fingerprint) and the code of every
tooldiff module the build reaches, found by following imports from organism.build through the
package, including imports inside functions. Each module counts by its syntax tree without
docstrings, so comments, docstrings and formatting do not change it; any change to what runs
does. Left out are the modules that compute nothing a build produces: progress (bars and
messages), errors (the UserError type), the organism package's entry (re-exports and
load_organism) and ship.py (which copies the shipped pair in and out).

organism.json records the fingerprint and a hash per module, so a stale pair names the modules
that changed (tests/test_shipped.py).
"""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

ROOT_MODULE = "tooldiff.organism.build"
NOT_RECIPE = frozenset({"tooldiff.progress", "tooldiff.errors", "tooldiff.organism", "tooldiff.organism.ship"})


PACKAGE_DIR = Path(__file__).resolve().parents[1]  # src/tooldiff (or site-packages/tooldiff)


def _source_path(module: str) -> Path | None:
    """The file of a tooldiff module, found on disk (importing it would run it)."""
    parts = module.split(".")
    if parts[0] != "tooldiff":
        return None
    stem = PACKAGE_DIR.joinpath(*parts[1:])
    for path in (stem.with_suffix(".py"), stem / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imported(module: str, tree: ast.AST, is_package: bool) -> set[str]:
    """tooldiff modules that `tree` imports (absolute or relative, at any depth)."""
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}  # `from pkg import module`
    return {name for name in found if _source_path(name)}


def _normalised(tree: ast.Module) -> str:
    """The tree without docstrings, dumped without line numbers."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and \
                isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


def module_hashes(root: str = ROOT_MODULE) -> dict[str, str]:
    """{module: hash of its normalised syntax tree} for every tooldiff module `root` reaches."""
    hashes: dict[str, str] = {}
    todo = [root]
    while todo:
        module = todo.pop()
        if module in hashes or module in NOT_RECIPE:
            continue
        path = _source_path(module)
        tree = ast.parse(path.read_text())
        todo += sorted(_imported(module, tree, path.name == "__init__.py"))
        hashes[module] = hashlib.sha256(_normalised(tree).encode()).hexdigest()[:16]
    return dict(sorted(hashes.items()))


def fingerprint(config: dict, modules: dict[str, str]) -> str:
    blob = json.dumps({"config": config, "modules": modules}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def recipe(config: dict) -> dict:
    """What organism.json records: the fingerprint of this config with today's code, and why."""
    modules = module_hashes()
    return {"fingerprint": fingerprint(config, modules), "modules": modules}


def changed_modules(recorded: dict, current: dict) -> list[str]:
    """Modules whose code differs between two recipes (added or removed ones included)."""
    old, new = recorded.get("modules", {}), current.get("modules", {})
    return sorted(m for m in set(old) | set(new) if old.get(m) != new.get(m))
