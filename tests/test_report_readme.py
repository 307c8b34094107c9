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


def test_the_splice_cost_line_reads_the_range_over_crosscoders():
    from tooldiff.report.readme import _splice_loss_line
    from tooldiff.report.results import Results

    results = Results.model_construct(splice_loss=[])
    assert _splice_loss_line(results) == []

    def row(cc, model, texts, positions, ce, kl=0.9):
        from tooldiff.experiment.summary import SpliceLoss

        return SpliceLoss(crosscoder=cc, model=model, texts=texts, positions=positions, n_texts=4, n_tokens=9,
                          kl_splice=0.1, kl_zero=1.0, ce_recovered=ce, kl_recovered=kl)

    results = Results.model_construct(splice_loss=[row("a", "rl", "generic", "all", 0.91),
                                                   row("b", "rl", "generic", "all", 0.42),
                                                   row("a", "rl", "generic", "last_prompt", None, kl=0.97),
                                                   row("a", "base", "tool_prompts", "all", 0.5)])
    (line,) = _splice_loss_line(results)
    decision, every = line.split("CE recovered")
    assert "rl on generic 0.97 to 0.97" in decision
    assert "rl on generic 0.42 to 0.91" in every and "base on tool prompts 0.50 to 0.50" in every
