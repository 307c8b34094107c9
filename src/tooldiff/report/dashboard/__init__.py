"""The feature dashboard: a static site to look at each tool feature, its evidence and its dial.

    write_dashboard(RunPaths(experiment_dir, ...), out) -> Dashboard

An index (each crosscoder's training metrics, a sortable and filterable table of every latent,
the findings and the positive-control verdict) and one page per latent worth a look (the top
tool features, every latent the experiment intervened on or used as a control, the planted one):
max-activating examples with token-level highlights in RL and base, histograms by request kind,
the logit lens of its decoder, and every condition that used it beside its controls and rivals.
`live.html` is the live panel, working when `tooldiff serve --dashboard DIR` serves the site.

The site opens from `file://` with no network; the data comes from the run's files through
`data.py` (the one module that reads them) and from the models and crosscoders (`analysis.py`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from tooldiff.report.dashboard.data import RunPaths, load_run

__all__ = ["Dashboard", "RunPaths", "write_dashboard"]


@dataclass(frozen=True)
class Dashboard:
    out: Path
    pages: int
    bytes: int
    seconds: float


def write_dashboard(paths: RunPaths, out: Path, device: str = "cpu") -> Dashboard:
    """Read the run, compute the per-latent views, and write the site to `out` (replaced whole)."""
    from tooldiff.progress import new_progress
    from tooldiff.report.dashboard import analysis, pages
    from tooldiff.report.dashboard.site import INDEX, LIVE, SiteWriter, size_bytes

    start = time.perf_counter()
    run = load_run(paths)
    wanted = {(s, name): analysis.page_latents(st, cc) for s, st in run.studies.items() for name, cc in st.crosscoders.items()}
    site = SiteWriter(out)
    try:
        with new_progress(transient=True) as bar:
            task = bar.add_task("dashboard", total=len(wanted) + sum(map(len, wanted.values())) + len(run.studies))
            views: dict[str, dict] = {}
            written: set[str] = set()
            for s, study in run.studies.items():
                inputs = analysis.load_inputs(study, device)
                tokens = pages.Tokens(inputs.tokenizer)
                bar.advance(task)
                views[s] = {}
                for name, cc in study.crosscoders.items():
                    latents = sorted(wanted[s, name])
                    views[s][name] = view = analysis.view_crosscoder(cc, inputs, latents)
                    bar.advance(task)
                    for latent in latents:
                        rel = pages.page_name(s, name, latent)
                        data = pages.latent_page(study, s, cc, view, latent, wanted[s, name][latent], tokens,
                                                 inputs.token_ids)
                        site.page(rel, f"{name} latent {latent}", data)
                        written.add(rel)
                        bar.advance(task)
            site.page(INDEX, "tooldiff dashboard", pages.index_page(run, views, written))
            site.page(LIVE, "tooldiff live panel", pages.live_page(run), ("dashboard.js", "live.js"))
        final = site.commit()
    except BaseException:
        site.abort()
        raise
    return Dashboard(final, len(written), size_bytes(final), round(time.perf_counter() - start, 1))

