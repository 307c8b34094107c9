"""Stage: results.json (SPEC §7) and report.md with its plots, generated from the numbers."""

from __future__ import annotations

import shutil
from pathlib import Path

from tooldiff.features.ranking import ranking_file
from tooldiff.report.claims_table import claim_entries
from tooldiff.report.markdown import render_report
from tooldiff.report.plots import plot_delta_histogram, plot_dose_response
from tooldiff.experiment.positive import PositiveSummary
from tooldiff.experiment.summary import ExperimentSummary
from tooldiff.report.results import Results, build_results, read_results, write_results


def write_report(experiment: ExperimentSummary, out: Path, organism_info: dict | None = None,
                 positive: PositiveSummary | None = None, machine: str | None = None) -> Results:
    """Write out/results.json, out/report.md and the PNGs beside it; returns the results."""
    out.mkdir(parents=True, exist_ok=True)
    results = build_results(experiment, organism_info, positive)
    results = results.with_facts(claims=claim_entries(results))
    write_results(results, out)
    plots = {"dose-response": plot_dose_response(results, out / "dose_response.png").name,
             "Δ histogram": plot_delta_histogram(experiment.rankings, out / "delta_hist.png").name}
    for name in experiment.rankings:
        src = ranking_file(out, name).with_suffix(".png")  # where the experiment put it, when out is its directory
        if src.is_file():
            shutil.copy(src, out / f"features_{name}.png")
            plots[f"feature ranking {name}"] = f"features_{name}.png"
    (out / "report.md").write_text(render_report(results, plots, machine))
    return results


__all__ = ["Results", "build_results", "read_results", "render_report", "write_report", "write_results"]
