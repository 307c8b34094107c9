"""The shipped organism pair (src/tooldiff/organism/shipped): current, reproducible, checked.

- its recipe fingerprint is today's code's (a recipe change lands only with a refreshed pair);
- the twin's greedy outputs on 200 test prompts equal the outputs stored with it, and the
  metrics in organism.json follow from the stored outputs;
- the rank1 twin rebuilt from the base and its changed tensors answers as it did when built;
- a missing or corrupted file ends in one line naming it, with --rebuild as the way out.
"""

from __future__ import annotations

import ast
import json
import shutil

import pytest

from tooldiff.errors import UserError
from tooldiff.organism.ship import MANIFEST, SHIPPED_DIR, install_shipped

REPRODUCE_N = 200
REFRESH = "tooldiff organism --out runs/shipped --ship --threads 2"


@pytest.fixture(scope="module")
def shipped_full(tmp_path_factory):
    return install_shipped(tmp_path_factory.mktemp("shipped") / "organism", "full")


def _info(path=SHIPPED_DIR / "organism.json") -> dict:
    return json.loads(path.read_text())


def test_the_shipped_pair_is_the_current_recipe():
    from tooldiff.organism import get_preset
    from tooldiff.organism.recipe import changed_modules, recipe

    for info in (_info(), _info(SHIPPED_DIR / "rank1" / "organism.json")):
        current = recipe(get_preset(info["preset"]).to_dict())
        changed = changed_modules(info["recipe"], current)
        assert info["recipe"]["fingerprint"] == current["fingerprint"], (
            f"the recipe changed since the shipped pair was built (code: {changed or 'none'}; else the config): "
            f"refresh it with `{REFRESH}`")


def test_the_fingerprint_follows_code_not_comments_or_docstrings():
    from tooldiff.organism.recipe import _normalised, module_hashes

    code = 'def f(x):\n    """Doc."""\n    return x + 1  # one\n'
    same = 'def f(x):\n    """Another doc."""\n\n    return x + 1\n'
    other = 'def f(x):\n    """Doc."""\n    return x + 2\n'
    assert _normalised(ast.parse(code)) == _normalised(ast.parse(same))
    assert _normalised(ast.parse(code)) != _normalised(ast.parse(other))
    modules = module_hashes()
    # reached through imports inside functions (build.py imports its stages lazily)
    assert {"tooldiff.organism.grpo", "tooldiff.organism.checkpoints", "tooldiff.hf",
            "tooldiff.evaluation.ast_check"} <= set(modules)
    assert "tooldiff.organism.ship" not in modules and "tooldiff.progress" not in modules


def test_a_changed_module_changes_the_fingerprint(monkeypatch, tmp_path):
    """The staleness test above can fail: change one recipe module's code on disk and the
    fingerprint moves, naming that module."""
    from tooldiff.organism import recipe as recipe_mod

    package = tmp_path / "tooldiff"
    shutil.copytree(recipe_mod.PACKAGE_DIR, package, ignore=shutil.ignore_patterns("shipped", "__pycache__"))
    before = recipe_mod.recipe({"x": 1})
    monkeypatch.setattr(recipe_mod, "PACKAGE_DIR", package)
    assert recipe_mod.recipe({"x": 1}) == before  # the copy is the same code
    reward = package / "organism" / "reward.py"
    reward.write_text(reward.read_text() + "\nEXTRA = 1\n")
    after = recipe_mod.recipe({"x": 1})
    assert after["fingerprint"] != before["fingerprint"]
    assert recipe_mod.changed_modules(before, after) == ["tooldiff.organism.reward"]
    assert recipe_mod.recipe({"x": 2})["fingerprint"] != after["fingerprint"]  # the config counts too


def _every_kth(rows: list, n: int) -> list:
    step = len(rows) // n
    return rows[::step][:n]


def test_the_twin_reproduces_its_stored_outputs(shipped_full):
    """Greedy decoding of 200 test prompts (every 4th, all kinds) gives the stored outputs."""
    from tooldiff.organism import load_organism
    from tooldiff.organism.generate import generate_for_records
    from tooldiff.organism.measure import max_new_tokens_for
    from tooldiff.organism.store import read_jsonl
    from tooldiff.threads import one_thread

    org = load_organism(shipped_full)
    test = org.records("test")
    stored = read_jsonl(shipped_full / "eval" / "rl_test_outputs.jsonl")
    assert [s["id"] for s in stored] == [r["id"] for r in test]
    picked = _every_kth(list(zip(test, stored)), REPRODUCE_N)
    assert len(picked) == REPRODUCE_N and {r["kind"] for r, _ in picked} == {"call", "not_offered", "chitchat"}
    records = [r for r, _ in picked]
    with one_thread():  # as the build's eval stage ran
        outputs = generate_for_records(org.rl, org.tokenizer, records, max_new_tokens_for(test, org.tokenizer),
                                       org.info["config"]["eval_batch_size"], "shipped twin")
    differ = [(r["id"], s["output"], o) for (r, s), o in zip(picked, outputs) if s["output"] != o]
    assert len(differ) <= 1, f"{len(differ)} of {REPRODUCE_N} outputs differ: {differ[:3]}"


def test_the_experiments_generation_loop_gives_the_organisms_outputs(shipped_full):
    """Two loops decode greedily: the build's (HF generate, organism/generate.py: the organism
    stage cannot import interventions) and the experiment's (interventions/generate.py, which
    takes interventions). With none, the experiment's loop gives the stored outputs too, so a
    demo's baseline and organism.json's metrics describe the same twin."""
    from tooldiff.interventions import generate
    from tooldiff.organism import load_organism
    from tooldiff.organism.measure import max_new_tokens_for
    from tooldiff.organism.store import read_jsonl
    from tooldiff.threads import one_thread

    org = load_organism(shipped_full)
    test = org.records("test")
    picked = _every_kth(list(zip(test, read_jsonl(shipped_full / "eval" / "rl_test_outputs.jsonl"))), REPRODUCE_N)
    with one_thread():
        outputs = generate(org.rl, org.tokenizer, [r for r, _ in picked], max_new_tokens=max_new_tokens_for(
            test, org.tokenizer), batch_size=org.info["config"]["eval_batch_size"], progress=False)
    differ = [(r["id"], s["output"], o) for (r, s), o in zip(picked, outputs) if s["output"] != o]
    assert len(differ) <= 1, f"{len(differ)} of {REPRODUCE_N} outputs differ: {differ[:3]}"


@pytest.mark.parametrize("model", ["base", "rl"])
def test_the_metrics_follow_from_the_stored_outputs(shipped_full, model):
    """organism.json's test metrics are the stored outputs scored again (as measure.evaluate does)."""
    from tooldiff.evaluation import score_outputs
    from tooldiff.organism import load_organism
    from tooldiff.organism.measure import metrics_by_kind
    from tooldiff.organism.store import read_jsonl

    org = load_organism(shipped_full, models=False)
    outputs = [s["output"] for s in read_jsonl(shipped_full / "eval" / f"{model}_test_outputs.jsonl")]
    report = score_outputs(org.records("test"), outputs, fmt="hermes", strict=True, seed=org.info["seed"])
    recorded = org.info["metrics"][model]
    assert report.metrics["strict"] == recorded["strict"]
    assert metrics_by_kind(report.rows, org.info["seed"]) == recorded["by_kind"]
    assert report.error_counts == recorded["error_counts"]


def test_the_rank1_twin_is_rebuilt_from_its_changed_tensors(tmp_path):
    from safetensors.torch import load_file

    from tooldiff.organism import load_organism
    from tooldiff.organism.generate import generate_for_records
    from tooldiff.organism.measure import max_new_tokens_for
    from tooldiff.organism.store import read_jsonl
    from tooldiff.threads import one_thread

    org = load_organism(install_shipped(tmp_path / "rank1", "rank1"))
    base = load_file(str(org.base_path / "model.safetensors"))
    twin = load_file(str(org.rl_path / "model.safetensors"))
    changed = [k for k in base if not bool((base[k] == twin[k]).all())]
    assert len(changed) == 1 and "down_proj" in changed[0], changed  # one layer's output projection
    test = org.records("test")
    picked = _every_kth(list(zip(test, read_jsonl(org.root / "eval" / "rl_test_outputs.jsonl"))), 40)
    with one_thread():
        outputs = generate_for_records(org.rl, org.tokenizer, [r for r, _ in picked],
                                       max_new_tokens_for(test, org.tokenizer), 64, "rank1 twin")
    assert sum(s["output"] != o for (_, s), o in zip(picked, outputs)) == 0


def _copy_of_shipped(tmp_path):
    copy = tmp_path / "shipped"
    shutil.copytree(SHIPPED_DIR, copy)
    return copy


def test_a_missing_or_corrupted_file_is_named_with_the_way_out(tmp_path):
    copy = _copy_of_shipped(tmp_path)
    weights = copy / "rl" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    with pytest.raises(UserError, match=r"rl/model.safetensors is corrupted.*--rebuild"):
        install_shipped(tmp_path / "a", "full", source=copy)
    (copy / "data" / "test.jsonl.gz").unlink()
    with pytest.raises(UserError, match=r"data/test.jsonl.gz is missing.*--rebuild"):
        install_shipped(tmp_path / "b", "rank1", source=copy)
    (copy / MANIFEST).unlink()
    with pytest.raises(UserError, match=r"MANIFEST.json is missing or unreadable.*--rebuild"):
        install_shipped(tmp_path / "c", "full", source=copy)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_install_keeps_the_same_organism_and_refuses_to_overwrite_another(tmp_path, shipped_full):
    assert install_shipped(shipped_full, "full") == shipped_full  # already there: kept
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="already holds something other"):
        install_shipped(other, "full")
    assert (other / "notes.txt").read_text() == "mine"


def test_ship_refuses_builds_that_are_not_the_default_seed_0(tmp_path, tiny_organism):
    from tooldiff.organism.ship import ship

    with pytest.raises(UserError, match="preset 'tiny'"):
        ship(tiny_organism, tiny_organism, dest=tmp_path / "shipped")
    assert not (tmp_path / "shipped").exists()


def test_the_shipped_pair_is_small():
    size = sum(p.stat().st_size for p in SHIPPED_DIR.rglob("*") if p.is_file())
    assert size < 15e6, f"the shipped pair holds {size / 1e6:.1f} MB"


def test_the_demo_installs_the_shipped_pair_and_its_control_reuses_it(tmp_path, monkeypatch):
    """`tooldiff demo` (default preset, seed 0) installs both organisms; the positive control's
    build call then finds its organism finished (same config hash) and builds nothing."""
    from tooldiff.demo import organisms
    from tooldiff.organism import build_organism
    from tooldiff.organism import build as build_mod

    assert organisms(tmp_path, "default", 0, threads=1, rebuild=False, positive_control=True) == "shipped"
    monkeypatch.setattr(build_mod, "STAGE_FUNCS", {})  # any stage that runs would fail
    for variant in ("full", "rank1"):
        out = tmp_path / ("organism" if variant == "full" else "organism-rank1")
        assert build_organism(out, preset="default", seed=0, variant=variant, shared_from=tmp_path / "organism") == out


def test_a_twin_built_on_the_installed_shipped_base_writes_its_organism_json(shipped_full, tmp_path, monkeypatch):
    """`tooldiff organism --variant sham --shared-from` an installed shipped pair: the copied
    data, tokenizer and base stages carry what organism.json reports about them (the RL and
    eval stages are stood in for by copies, to keep the test fast)."""
    from tooldiff.organism import build_organism
    from tooldiff.organism import build as build_mod

    shipped = _info()

    def copied(stage, extra):
        def run(b):
            shutil.copytree(shipped_full / stage, b.out / stage)
            return extra
        return run

    rl_marker = {k: v for k, v in shipped["rl_training"].items() if k != "shared_from"}
    monkeypatch.setattr(build_mod, "STAGE_FUNCS", {"rl": copied("rl", rl_marker), "eval": copied("eval", {})})
    out = build_organism(tmp_path / "sham", preset="default", seed=0, variant="sham", shared_from=shipped_full)
    built = json.loads((out / "organism.json").read_text())
    bookkeeping = ("hash", "shared_from", "installed")
    assert built["model"] == shipped["model"]
    assert {k: v for k, v in built["data"].items() if k not in bookkeeping} == \
        {k: v for k, v in shipped["data"].items() if k not in bookkeeping}
    assert {s: built["build_seconds"][s] for s in ("data", "tokenizer", "base")} == \
        {s: shipped["build_seconds"][s] for s in ("data", "tokenizer", "base")}
