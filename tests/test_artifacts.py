"""Typed artifacts (tooldiff.artifacts) and the model pair (tooldiff.pair): every reader refuses an
old or foreign file with one line naming it, a file read and written back is unchanged, and a pair
reads its splits without leaking held-out rows into training. No models: fast."""

import json

import pytest

from tooldiff.artifacts import read_artifact, write_artifact
from tooldiff.errors import UserError
from tooldiff.experiment.summary import ExperimentSummary, read_summary
from tooldiff.features.ranking import FeatureRanking, read_ranking
from tooldiff.organism import load_organism
from tooldiff.organism.info import OrganismInfo
from tooldiff.pair import ModelPair
from tooldiff.report.results import Results, read_results

FOREIGN = {"name": "someone else's file", "items": [1, 2]}


def _one_line(err: pytest.ExceptionInfo, path) -> str:
    text = str(err.value)
    assert "\n" not in text and str(path) in text
    return text


def _readers(tmp_path):
    """(file, reader) for each artifact, in a directory of its own."""
    exp, org = tmp_path / "exp", tmp_path / "org"
    exp.mkdir(), org.mkdir()
    return [(tmp_path / "ranking.json", lambda p: read_ranking(p, tmp_path, 4)),
            (exp / "experiment.json", lambda p: read_summary(p.parent)),
            (tmp_path / "results.json", read_results),
            (org / "organism.json", lambda p: load_organism(p.parent, models=False))]


@pytest.mark.parametrize("index", range(4))
@pytest.mark.parametrize("content,says", [
    (json.dumps(FOREIGN), "no \"format\" field"),  # foreign, or written before artifacts had a format
    (json.dumps({**FOREIGN, "format": 99}), "of format 99; this tooldiff reads format 1"),
    (json.dumps({"format": 1}), "is not a valid"),  # the right kind's number, none of its fields
    (json.dumps([1, 2]), "not an object"),
    ("{torn", "not readable JSON"),
])
def test_every_reader_refuses_an_old_or_foreign_file_with_one_line(tmp_path, index, content, says):
    path, read = _readers(tmp_path)[index]
    path.write_text(content)
    with pytest.raises(UserError) as err:
        read(path)
    assert says in _one_line(err, path)


def test_the_study_pair_file_of_older_runs_is_refused(tmp_path):
    """The `"kind": "study-pair"` organism.json that `tooldiff run` used to write is not an organism."""
    (tmp_path / "organism.json").write_text(json.dumps({"kind": "study-pair", "variant": "pair",
                                                        "layer": {"recommended": 1}, "paths": {}}))
    with pytest.raises(UserError, match="no \"format\" field"):
        load_organism(tmp_path, models=False)


def test_the_shipped_organism_json_reads_as_written():
    from tooldiff.organism.info import read_info
    from tooldiff.organism.ship import SHIPPED_DIR

    info, raw = read_info(SHIPPED_DIR)
    assert isinstance(info, OrganismInfo) and info.format == OrganismInfo.FORMAT
    assert info.layer.recommended == raw["layer"]["recommended"] and info.paths.rl == raw["paths"]["rl"]


def test_the_committed_demo_results_round_trip_unchanged(tmp_path):
    from tooldiff.report.readme import DEMO_RESULTS

    results = read_results(DEMO_RESULTS)
    assert results.findings.single_latent.n_tried >= 1 and results.positive_control
    back = write_artifact(results, tmp_path / "results.json")
    assert back.read_text() == DEMO_RESULTS.read_text()


def test_a_synthetic_summary_round_trips(synthetic, tmp_path):
    summary = synthetic.experiment(synthetic.analysed(35, [10, 11]))
    path = write_artifact(summary, tmp_path / "experiment.json")
    assert read_artifact(ExperimentSummary, path) == summary
    assert isinstance(summary.rankings["cc0"], FeatureRanking) and summary.conditions[0].key == "none"
    assert Results.FORMAT == ExperimentSummary.FORMAT == FeatureRanking.FORMAT == 1


def _pair(tmp_path, **splits) -> ModelPair:
    return ModelPair(name="t", base=tmp_path / "base", rl=tmp_path / "rl", tokenizer=tmp_path / "rl", layer=1,
                     splits=splits)


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_pair_keeps_held_out_rows_out_of_training(tmp_path):
    tools = _jsonl(tmp_path / "rl.jsonl", [{"id": "a"}, {"id": "b"}])
    generic = _jsonl(tmp_path / "generic.jsonl", [{"id": "g1", "split": "calibration"}, {"id": "g2", "split": "test"},
                                                  {"id": "g3"}])
    test = _jsonl(tmp_path / "test.jsonl", [{"id": "t"}])
    pair = _pair(tmp_path, train=(tools, generic), calibration=(generic,), test=(test,))
    assert [r["id"] for r in pair.records("train")] == ["a", "b", "g3"]
    assert [r["id"] for r in pair.records("calibration")] == ["g1", "g3"]
    assert pair.split_file("test", tmp_path / "x.jsonl") == test  # one file, nothing dropped: itself
    written = pair.split_file("train", tmp_path / "train.jsonl")
    assert written == tmp_path / "train.jsonl" and [json.loads(l)["id"] for l in written.read_text().splitlines()] == [
        "a", "b", "g3"]
    with pytest.raises(UserError, match="unknown split"):
        pair.records("pretrain")


def test_a_pair_needs_all_three_splits(tmp_path):
    with pytest.raises(UserError, match="has no calibration, test prompts"):
        _pair(tmp_path, train=(tmp_path / "x.jsonl",))
