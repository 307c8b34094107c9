"""The experiment end to end on the tiny organism: runs, resumes after a crash, refuses bad input."""

import json
import shutil
from dataclasses import replace

import pytest

from tooldiff.errors import UserError
from tooldiff.experiment import run_experiment
from tooldiff.experiment.summary import read_summary
from tooldiff.report import write_report


@pytest.fixture(scope="module")
def crosscoders(tiny_study):
    return tiny_study.crosscoders  # the run layout: RUN/crosscoders/<name>, RUN/experiment


@pytest.fixture(scope="module")
def experiment(tiny_study):
    """(summary, experiment directory) of one run of the grid, beside the crosscoders."""
    return tiny_study.summary, tiny_study.experiment


@pytest.fixture(scope="module")
def grid(tiny_study):
    return tiny_study.config


def test_experiment_writes_every_condition_and_resumes_without_regenerating(tiny_study, crosscoders, experiment,
                                                                          grid, tmp_path, monkeypatch):
    cfg = grid
    summary = experiment[0]
    shutil.copytree(experiment[1], tmp_path, dirs_exist_ok=True)
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == len(summary.conditions) > 20
    roles = {c.role for c in summary.conditions}
    assert {"reference", "effect", "control_random", "control_unrelated", "baseline"} <= roles
    assert all(c.metrics.n == 9 for c in summary.conditions)
    assert set(summary.rankings) == {"plain", "dfc"}
    assert json.dumps(read_summary(experiment[1]).to_dict()) == json.dumps(summary.to_dict())  # NaN != NaN

    # a crash mid-write: drop the last half and tear the final line; the rerun redoes only those
    keep = len(lines) // 2
    (tmp_path / "results.jsonl").write_text("\n".join(lines[:keep]) + "\n" + lines[keep][:40])
    again = run_experiment(tiny_study.pair, crosscoders, tmp_path, cfg)
    assert {c.key for c in again.conditions} == {c.key for c in summary.conditions}

    # a finished run regenerates nothing at all
    import tooldiff.experiment.runner as runner

    monkeypatch.setattr(runner, "generate_completions", lambda *a, **k: pytest.fail("regenerated a finished condition"))
    run_experiment(tiny_study.pair, crosscoders, tmp_path, cfg)

    results = write_report(summary, tmp_path / "report")
    assert results.models["rl"] and results.conditions and results.features and results.crosscoders
    assert (tmp_path / "report" / "report.md").read_text().count("## ") >= 4
    assert (tmp_path / "report" / "dose_response.png").stat().st_size > 1000


def test_every_splice_has_its_loss_recovered_in_the_summary_and_the_report(experiment, tmp_path):
    """Each crosscoder's reconstruction, in each model, on generic text and on tool prompts, at
    every token (CE and KL) and at the decision position (KL only)."""
    from tooldiff.experiment.splice_loss import GENERIC, TOOL_PROMPTS

    summary = experiment[0]
    cells = {(r.crosscoder, r.model, r.texts, r.positions) for r in summary.splice_loss}
    assert cells == {(cc, m, t, p) for cc in ("plain", "dfc") for m in ("base", "rl")
                     for t in (GENERIC, TOOL_PROMPTS) for p in ("all", "last_prompt")}
    for r in summary.splice_loss:
        assert r.n_texts > 0 and r.kl_zero > 0 and r.kl_splice >= 0
        if r.positions == "all":  # a trained reconstruction beats zeroing the layer
            assert r.n_tokens > 0 and r.ce_zero > r.ce_clean and r.ce_recovered > 0
        else:
            assert r.n_tokens == 0 and r.ce_recovered is None and r.kl_recovered is not None
    report = write_report(summary, tmp_path)
    assert len(report.splice_loss) == len(cells)
    assert (tmp_path / "report.md").read_text().count("| dfc | rl | tool prompts | last_prompt |") == 1


def test_loss_texts_sample_each_set_and_leave_out_what_a_pair_lacks(tiny_study):
    from tooldiff.experiment.splice_loss import GENERIC, TOOL_PROMPTS, loss_texts, placements
    from tooldiff.hf import load_tokenizer

    tok = load_tokenizer(tiny_study.pair.tokenizer)
    records = tiny_study.pair.records("calibration")
    texts = loss_texts(records, tok, 5, 0)
    assert set(texts) == {GENERIC, TOOL_PROMPTS} and all(len(t) == 5 for t in texts.values())
    assert texts == loss_texts(records, tok, 5, 0) != loss_texts(records, tok, 5, 1)
    assert set(loss_texts([r for r in records if "messages" in r], tok, 5, 0)) == {TOOL_PROMPTS}
    assert placements("last_prompt") == ("all", "last_prompt") and placements("all") == placements("prompt") == ("all",)


def test_crosscoder_from_another_pair_is_refused(tiny_study, crosscoders, grid, tmp_path):
    cc = tmp_path / "cc" / "dfc"
    shutil.copytree(crosscoders / "dfc", cc)
    meta = json.loads((cc / "config.json").read_text())
    meta["info"]["models"] = ["/somewhere/else/rl", "/somewhere/else/base"]
    (cc / "config.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="trained on models"):
        run_experiment(tiny_study.pair, cc, tmp_path / "out", grid)


def test_empty_test_split_is_refused(tiny_study, crosscoders, grid, tmp_path):
    test = tmp_path / "test.jsonl"
    test.write_text("".join(json.dumps(r) + "\n" for r in tiny_study.pair.records("test") if r["kind"] != "call"))
    pair = replace(tiny_study.pair, splits={**tiny_study.pair.splits, "test": (test,)})
    with pytest.raises(UserError, match="no 'call' prompts"):
        run_experiment(pair, crosscoders, tmp_path / "out", grid)


def test_a_pair_without_test_prompts_is_refused(tiny_study):
    with pytest.raises(UserError, match="has no test prompts"):
        replace(tiny_study.pair, splits={**tiny_study.pair.splits, "test": ()})


def test_the_server_lists_the_ranking_the_experiment_wrote(tiny_organism, crosscoders, experiment):
    """`GET /v1/steering/features` on a crosscoder of a run: the experiment's ranking, named by `source`."""
    import asyncio

    import httpx

    from tooldiff.organism import load_organism
    from tooldiff.serve import Engine, ServerSettings, create_app, load_served

    summary, out = experiment
    rl = str(load_organism(tiny_organism, models=False).rl_path)
    settings = ServerSettings(model=rl, crosscoder=str(crosscoders / "dfc"))  # found by the run layout

    async def get(path: str) -> dict:
        app = create_app(settings, Engine(load_served(settings), 1, 0.0, 1))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            response = await client.get(path)
        assert response.status_code == 200, response.text
        return response.json()

    listing = asyncio.run(get("/v1/steering/features?limit=1000"))
    assert listing["source"] == str((out / "features" / "dfc.json").resolve()) and "note" not in listing
    ranked = summary.rankings["dfc"].latents
    assert [row["latent"] for row in listing["data"]] == [row.latent for row in ranked]
    assert listing["data"][0]["strict_auroc"] == ranked[0].strict_auroc
    with pytest.raises(UserError, match="computed from other weights"):  # another crosscoder's ranking
        load_served(settings.model_copy(update={"features": str(out / "features" / "plain.json")}))
