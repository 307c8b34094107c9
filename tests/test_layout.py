"""The layout is the pipeline: a stage imports only stages before it and the shared libraries,
never a later stage (docs/architecture.md). Read from the source's import statements (those inside
functions included), so a new upward import fails here, not in a reader's head."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "tooldiff"
STAGES = ["organism", "activations", "crosscoder", "features", "interventions", "experiment", "report", "serve"]
# Libraries every stage may use; they import no stage themselves.
LIBRARIES = {"errors", "progress", "threads", "artifacts", "hf", "prompts", "evaluation", "configs", "jobs"}


def _imports(path: Path) -> set[str]:
    """The top-level tooldiff packages or modules `path` imports (absolute imports only)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else \
            [a.name for a in node.names] if isinstance(node, ast.Import) else []
        found |= {n.split(".")[1] for n in names if n.startswith("tooldiff.")}
    return found


def _unit(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def test_no_stage_imports_a_later_stage_and_no_library_imports_a_stage():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        unit = _unit(path)
        for target in _imports(path) - {unit}:
            if unit in LIBRARIES and target not in LIBRARIES:
                wrong.append(f"{path.relative_to(PACKAGE)} (a library) imports the stage {target}")
            elif unit in STAGES and target in STAGES and STAGES.index(target) > STAGES.index(unit):
                wrong.append(f"{path.relative_to(PACKAGE)} ({unit}) imports the later stage {target}")
    assert not wrong, "\n".join(wrong)


def test_the_checker_sees_an_upward_import(tmp_path):
    """The rule above can fail: an import from a later stage is found, inside a function too."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from tooldiff.report.results import RESULTS_FILE\n")
    assert _imports(module) == {"report"}
