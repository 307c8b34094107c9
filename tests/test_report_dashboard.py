"""The dashboard's files on the tiny study: its numbers are the results files' numbers, every latent
has a row, the latents worth a look have pages, the site needs no network, bad input is one line.

The browser's view of the same dashboard is tests/test_report_dashboard_browser.py.
"""

import json
import math
import re
import shutil
import sys

import pytest

from tooldiff.errors import UserError
from tooldiff.report.dashboard import RunPaths, write_dashboard
from tooldiff.report.dashboard.analysis import TOP_FEATURES

pytestmark = pytest.mark.slow


def close(a, b) -> bool:
    if a is None or b is None or (isinstance(b, float) and math.isnan(b)):
        return a is None and (b is None or math.isnan(b))
    return math.isclose(a, b, rel_tol=0, abs_tol=0)  # the same number, not a near one


def test_the_index_shows_the_results_files_numbers(tiny_dashboard):
    index = tiny_dashboard.data("index.html")
    cols = index["columns"]
    rows = {(r[cols.index("study")], r[cols.index("crosscoder")], r[cols.index("latent")]): r for r in index["rows"]}
    for name in ("plain", "dfc"):
        ranking = json.loads((tiny_dashboard.study.experiment / "features" / f"{name}.json").read_text())
        assert sum(1 for k in rows if k[:2] == ("main", name)) == len(ranking["latents"])  # a row per latent
        for rank, entry in enumerate(ranking["latents"][::7]):  # a sample
            row = rows["main", name, entry["latent"]]
            for field in ("delta", "nu_eps", "nu_r", "strict_d", "strict_auroc", "paper_d", "paper_auroc"):
                assert close(row[cols.index(field)], entry[field]), (name, entry["latent"], field)
            for kind, rate in entry["firing"].items():
                assert close(row[cols.index(f"fire_{kind}")], rate)
    results = tiny_dashboard.results
    for b in index["baselines"]:
        model = results.models[b["model"]]
        assert b["strict"] == model.strict.to_dict() and b["n"] == model.n
    assert index["findings"]["single_latent_tried"] == results.findings.single_latent.n_tried
    assert index["findings"]["transfer"] == [row.to_dict() for row in results.findings.dfc_vs_dom]
    metrics = {cc["name"]: cc for cc in index["crosscoders"]["main"]}
    for name, trained in tiny_dashboard.study.summary.crosscoders.items():
        assert metrics[name]["fve"] == trained["fve"] and metrics[name]["l0"] == trained["l0"]


def test_a_latent_page_shows_the_experiments_numbers(tiny_dashboard):
    summary = tiny_dashboard.study.summary
    by_key = {c.key: c for c in summary.conditions}
    effect = next(c for c in summary.conditions if c.role == "effect" and c.crosscoder == "dfc"
                  and c.intervention == "steer" and len(c.features) == 1)
    page = tiny_dashboard.data(f"latents/main-dfc-{effect.features[0]}.html")
    shown = {c["key"]: c for c in page["conditions"]}
    assert effect.key in shown
    for row in shown[effect.key]["panel"]:  # the effect, its controls and rivals, as experiment.json has them
        source = by_key[row["key"]]
        for metric in ("strict", "call_rate"):
            assert row[metric] == [source.effect[metric].diff, *source.effect[metric].ci95]
    assert {r["key"] for r in shown[effect.key]["panel"]} >= {effect.key, *effect.controls}
    ranking = summary.rankings["dfc"]
    entry = next(r for r in ranking.latents if r.latent == page["latent"])
    assert page["stats"]["strict_auroc"] == entry.strict_auroc
    hist = page["histogram"]  # counted on the rows the ranking used: the same firing rates
    for kind, rate in entry.firing.items():
        assert hist["active"][kind] / hist["n"][kind] == pytest.approx(rate, abs=1e-6)
    assert sum(hist["n"].values()) == sum(ranking.n[k] for k in ("call", "not_offered", "chitchat", "generic"))


def test_pages_for_the_top_features_the_experiments_latents_and_the_planted_one(tiny_dashboard):
    pages = {p.name for p in (tiny_dashboard.dir / "latents").iterdir()}
    summary = tiny_dashboard.study.summary
    for name, ranking in summary.rankings.items():
        for entry in ranking.latents[:TOP_FEATURES]:
            assert f"main-{name}-{entry.latent}.html" in pages
    used = {(c.crosscoder, f) for c in summary.conditions for f in c.features if isinstance(f, int)}
    assert used and all(f"main-{cc}-{f}.html" in pages for cc, f in used)
    planted = tiny_dashboard.positive_summary.positive_control
    assert planted and all(f"positive-{cc}-{p.best_latent}.html" in pages for cc, p in planted.items())
    page = tiny_dashboard.data(f"latents/positive-dfc-{planted['dfc'].best_latent}.html")
    assert any("planted direction" in r for r in page["reasons"])
    assert tiny_dashboard.made.pages == len(pages)


def test_examples_carry_tokens_and_both_models_readings(tiny_dashboard):
    top = tiny_dashboard.study.summary.rankings["dfc"].latents[0].latent
    page = tiny_dashboard.data(f"latents/main-dfc-{top}.html")
    examples = [ex for b in page["examples"] for ex in b["examples"]]
    assert examples and page["n_active_prompts"] > 0
    for ex in examples:
        assert len(ex["tokens"]) == len(ex["rl"]) == len(ex["base"])
        assert max(max(ex["rl"]), max(ex["base"])) == pytest.approx(ex["peak"], rel=1e-3)
    assert page["examples"][0]["examples"][0]["peak"] == max(ex["peak"] for ex in examples)
    for model in ("rl", "base"):
        lens = page["lens"][model]
        assert len(lens["promoted"]) == 10 and lens["promoted"][0][1] >= lens["suppressed"][0][1]


def test_the_site_is_self_contained_and_small(tiny_dashboard):
    site = tiny_dashboard.dir
    for path in site.rglob("*"):
        if path.suffix in (".html", ".js", ".css"):
            text = path.read_text()
            assert not re.search(r"""(src|href)=["']?(https?:)?//|@import|url\(\s*["']?https?:""", text), path
    assert {p.name for p in (site / "assets").iterdir()} == {"dashboard.css", "dashboard.js", "live.js"}
    assert tiny_dashboard.made.bytes < 20e6


def test_bad_input_is_one_line(tiny_study, tmp_path, run_cli):
    result = run_cli("dashboard", tmp_path / "nothing")
    assert result.returncode == 2 and "does not exist" in result.stderr and len(result.stderr.strip().splitlines()) == 1

    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(tiny_study.experiment / "results.jsonl", unfinished)
    with pytest.raises(UserError, match="did not finish"):
        write_dashboard(RunPaths(unfinished), tmp_path / "out")
    (unfinished / "results.jsonl").unlink()
    with pytest.raises(UserError, match="holds no experiment results"):
        write_dashboard(RunPaths(unfinished), tmp_path / "out")

    older = tmp_path / "older"
    shutil.copytree(tiny_study.experiment, older)
    summary = json.loads((older / "experiment.json").read_text())
    for c in summary["conditions"]:
        c.pop("role")
    (older / "experiment.json").write_text(json.dumps(summary))
    result = run_cli("dashboard", older, "--crosscoders", tiny_study.crosscoders, "--out", tmp_path / "out")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "not a valid experiment summary" in result.stderr and "conditions[0].role" in result.stderr
    summary = json.loads((tiny_study.experiment / "experiment.json").read_text())
    del summary["rankings"]
    (older / "experiment.json").write_text(json.dumps(summary))
    with pytest.raises(UserError, match="not a valid experiment summary.*rankings"):
        write_dashboard(RunPaths(older, tiny_study.crosscoders), tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_a_failed_write_keeps_the_dashboard_that_was_there(tiny_dashboard, tiny_study, tmp_path, monkeypatch):
    out = tmp_path / "dash"
    shutil.copytree(tiny_dashboard.dir, out)
    import tooldiff.report.dashboard.pages as pages

    monkeypatch.setattr(pages, "latent_page", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        write_dashboard(tiny_dashboard.paths, out)
    assert (out / "index.html").read_text() == (tiny_dashboard.dir / "index.html").read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["dash"]  # no temporary left behind


def test_the_benchmark_script_runs_on_the_tiny_study(tiny_dashboard, tmp_path, capsys):
    """benchmarks/dashboard_time.py end to end (its timings are printed, not checked: machines are noisy)."""
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        import dashboard_time
    finally:
        sys.path.pop(0)
    paths = tiny_dashboard.paths
    dashboard_time.main(["--experiment", str(paths.experiment), "--results", str(paths.results), "--positive",
                         str(paths.positive), "--out", str(tmp_path / "d"), "--no-browser"])
    out = capsys.readouterr().out
    assert f"{tiny_dashboard.made.pages} latent pages" in out and "of the 30 s target" in out
    assert (tmp_path / "d" / "index.html").is_file()
