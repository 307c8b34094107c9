"""The README's numbers are the committed files' (report/readme.py renders its generated blocks)."""

from __future__ import annotations

import json

import pytest

from tooldiff.report.readme import DEMO_RESULTS, README, current_blocks, render


def test_the_readme_blocks_equal_what_the_committed_files_render():
    text = README.read_text()
    assert render(text, current_blocks()) == text, "README is stale: run `python -m tooldiff.report.readme`"


def test_a_changed_number_in_the_results_changes_the_readme(tmp_path):
    """The check above can fail: one number moved in results.json moves the rendered README."""
    results = json.loads(DEMO_RESULTS.read_text())
    results["models"]["rl"]["strict"]["mean"] += 0.01
    changed = tmp_path / "results.json"
    changed.write_text(json.dumps(results))
    text = README.read_text()
    assert render(text, current_blocks(changed)) != text


def test_a_readme_without_its_blocks_is_an_error():
    with pytest.raises(ValueError, match="no results block"):
        render("# a README\n", {"results": ["x"]})
