"""Building the organism: outputs, caching, errors, interruption, determinism, rank-1 variant."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from tooldiff.errors import UserError
from tooldiff.hf import decoder_layers, load_model, load_tokenizer
from tooldiff.organism import build_organism, get_preset, load_organism
from tooldiff.organism import build as build_module
from tooldiff.organism.build import build_from_config
from tooldiff.organism.config import PretrainConfig, RLConfig
from tooldiff.organism.requests import KindMix
from tooldiff.organism.world import TOOLS

M_KEYS = {"n", "strict", "lenient", "trigger", "calls_per_prompt"}


def micro_config():
    """Smaller than tiny: for tests that build several organisms."""
    tiny = get_preset("tiny")
    return replace(
        tiny,
        name="micro",
        splits={"test": KindMix(8, 4, 4), "calibration": KindMix(8, 4, 4), "rl": KindMix(24, 12, 12),
                "pretrain": KindMix(200, 100, 100)},
        generic_per_split=8,
        pretrain=PretrainConfig(steps=12, batch_size=8, max_doc_len=96, warmup_steps=4),
        rl=RLConfig(steps=2, prompts_per_step=2, num_generations=4, lr=5e-4, max_completion_length=16),
        tokenizer_docs=2500,
    )


@pytest.fixture(scope="module")
def micro_organism(tmp_path_factory):
    return build_from_config(tmp_path_factory.mktemp("micro") / "org", micro_config(), seed=0)


def _info(path: Path) -> dict:
    return json.loads((path / "organism.json").read_text())


# --- the tiny organism ------------------------------------------------------------------------
def test_layout_and_organism_json(tiny_organism):
    for rel in ("base/config.json", "base/model.safetensors", "rl/model.safetensors", "rl/tokenizer.json",
                "data/pretrain.jsonl", "data/rl.jsonl", "data/calibration.jsonl", "data/test.jsonl",
                "data/generic.jsonl"):
        assert (tiny_organism / rel).is_file(), rel
    assert not list(tiny_organism.glob("**/*.bin")) and not list(tiny_organism.glob("**/*.pt"))
    info = json.loads((tiny_organism / "organism.json").read_text())
    assert info["seed"] == 0 and info["variant"] == "full" and info["preset"] == "tiny"
    assert info["config_hash"] == get_preset("tiny").hash(0, "full")
    assert set(info["build_seconds"]) == {"data", "tokenizer", "base", "rl", "eval", "total"}
    for model in ("base", "rl"):
        m = info["metrics"][model]
        assert M_KEYS <= set(m) and m["n"] == 80
        assert {"precision", "recall", "f1", "fpr"} <= set(m["trigger"])
        assert set(m["fpr_by_kind"]) == {"not_offered", "chitchat"}
        lo, hi = m["strict"]["ci95"]
        assert lo <= m["strict"]["mean"] <= hi
    layer = info["layer"]
    assert 0 <= layer["recommended"] < 2 and len(layer["rl_dom_auroc"]) == 2
    forced = info["metrics"]["base"]["forced_call_strict"]  # can the base copy when made to call?
    assert forced["n"] == 40 and forced["ci95"][0] <= forced["mean"] <= forced["ci95"][1]


def test_a_base_that_cannot_copy_is_flagged(capsys):
    build_module._warn_if_the_base_cannot_copy({"forced_call_strict": {"n": 400, "mean": 0.095}})
    assert "only 10% of tool-needed test prompts" in capsys.readouterr().err
    build_module._warn_if_the_base_cannot_copy({"forced_call_strict": {"n": 400, "mean": 0.745}})
    assert "warning" not in capsys.readouterr().err


def test_generic_rows(tiny_organism):
    org = load_organism(tiny_organism, models=False)
    rows = org.records("generic")
    assert {r["split"] for r in rows} == {"calibration", "test"}
    assert all(r["kind"] == "generic" and "text" in r and "<|im_start|>" not in r["text"] for r in rows)


def test_models_load_as_plain_hf(tiny_organism):
    from transformers import AutoModelForCausalLM, Qwen2ForCausalLM

    org = load_organism(tiny_organism)
    assert isinstance(org.rl, Qwen2ForCausalLM) and isinstance(org.base, Qwen2ForCausalLM)
    auto = AutoModelForCausalLM.from_pretrained(str(org.rl_path))
    assert all(torch.equal(a, b) for a, b in zip(auto.state_dict().values(), org.rl.state_dict().values()))
    differs = [not torch.equal(a, b) for a, b in zip(org.base.state_dict().values(), org.rl.state_dict().values())]
    assert any(differs), "RL left the base unchanged"


def test_reuse_same_config_and_seed(tiny_organism):
    before = (tiny_organism / "rl" / "model.safetensors").stat().st_mtime_ns
    assert build_organism(tiny_organism, preset="tiny", seed=0) == tiny_organism
    assert (tiny_organism / "rl" / "model.safetensors").stat().st_mtime_ns == before


def test_other_seed_in_existing_dir_needs_force(tiny_organism):
    with pytest.raises(UserError, match="--force"):
        build_organism(tiny_organism, preset="tiny", seed=1)


# --- bad input ---------------------------------------------------------------------------------
def test_unknown_preset_variant_and_thread_count(tmp_path):
    with pytest.raises(UserError, match="unknown preset 'huge'"):
        build_organism(tmp_path / "o", preset="huge")
    with pytest.raises(UserError, match="unknown variant 'half'"):
        build_organism(tmp_path / "o", preset="tiny", variant="half")
    with pytest.raises(UserError, match="threads must be at least 1, got 0"):
        build_organism(tmp_path / "o", preset="tiny", threads=0)
    assert not (tmp_path / "o").exists()


def test_unwritable_dir(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(UserError, match="cannot write"):
        build_organism(blocker / "organism", preset="tiny")
    with pytest.raises(UserError, match="not a directory"):
        build_organism(blocker, preset="tiny")


def test_foreign_files_need_force(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="other files"):
        build_organism(tmp_path, preset="tiny")


def test_cli_errors_are_one_line(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "tooldiff.cli", "organism", *args],
                              capture_output=True, text=True, timeout=120)

    bad_preset = run("--out", str(tmp_path / "o"), "--preset", "huge")
    assert bad_preset.returncode == 2 and "unknown preset" in bad_preset.stderr
    assert "Traceback" not in bad_preset.stderr
    (tmp_path / "x").write_text("file")
    unwritable = run("--out", str(tmp_path / "x" / "o"), "--preset", "tiny")
    assert unwritable.returncode == 2 and "cannot write" in unwritable.stderr
    assert "Traceback" not in unwritable.stderr


# --- interruption, determinism, rank-1 ----------------------------------------------------------
class Interrupted(BaseException):
    pass


def test_interrupted_build_leaves_no_loadable_half_model_and_resumes(tmp_path, monkeypatch, micro_organism):
    cfg = micro_config()
    out = tmp_path / "org"
    real_save = build_module._save_model

    def crash_while_saving(model, tokenizer_dir, final, extra=None):
        if final.name == "rl":  # as if killed half-way through writing rl/
            (final.parent / ".tmp-rl-crash").mkdir()
            (final.parent / ".tmp-rl-crash" / "config.json").write_text("{}")
            raise Interrupted
        return real_save(model, tokenizer_dir, final, extra)

    monkeypatch.setattr(build_module, "_save_model", crash_while_saving)
    with pytest.raises(Interrupted):
        build_from_config(out, cfg, seed=0)
    assert (out / "base" / "model.safetensors").is_file() and not (out / "rl").exists()
    assert not (out / "organism.json").exists()
    with pytest.raises(UserError):
        load_organism(out)
    base_mtime = (out / "base" / "model.safetensors").stat().st_mtime_ns

    monkeypatch.setattr(build_module, "_save_model", real_save)
    build_from_config(out, cfg, seed=0)  # resumes: data, tokenizer and base are kept
    assert (out / "base" / "model.safetensors").stat().st_mtime_ns == base_mtime
    assert not list(out.glob(".tmp-*"))
    load_model(out / "rl")
    # A resumed build ends where an uninterrupted one does.
    assert _info(out)["metrics"] == _info(micro_organism)["metrics"]


def test_a_stage_written_but_not_marked_is_redone(tmp_path, monkeypatch, micro_organism):
    """A crash after a stage's rename but before its marker: the rerun resumes, it does not refuse DIR."""
    from tooldiff.organism.store import StageMarkers

    out = tmp_path / "org"
    real_mark = StageMarkers.mark

    def crash_before_marking(self, stage, seconds, **extra):
        if stage == "data":
            raise Interrupted
        return real_mark(self, stage, seconds, **extra)

    monkeypatch.setattr(StageMarkers, "mark", crash_before_marking)
    with pytest.raises(Interrupted):
        build_from_config(out, micro_config(), seed=0)
    assert (out / "data" / "test.jsonl").is_file() and not (out / ".stages" / "data.json").exists()
    monkeypatch.setattr(StageMarkers, "mark", real_mark)
    build_from_config(out, micro_config(), seed=0)
    assert _info(out)["metrics"] == _info(micro_organism)["metrics"]


def test_same_seed_same_weights_and_metrics(tmp_path, micro_organism):
    again = build_from_config(tmp_path / "again", micro_config(), seed=0)
    assert _info(again)["metrics"] == _info(micro_organism)["metrics"]
    for model in ("base", "rl"):
        sa = load_model(again / model).state_dict()
        sb = load_model(micro_organism / model).state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), model
    for split in ("pretrain", "rl", "calibration", "test", "generic"):
        assert (again / "data" / f"{split}.jsonl").read_bytes() == (micro_organism / "data" / f"{split}.jsonl").read_bytes()


def test_rank1_build_records_the_planted_direction(tmp_path, micro_organism):
    """Mechanics of a rank1 build that shares the full build's base (the micro base is too weak
    for RL to move it much: the next test checks the exact maths)."""
    from tooldiff.organism.rank1 import PLANTED_FILE

    cfg = replace(micro_config(), rl=replace(micro_config().rl, rank1_layer=1))  # not the middle layer (0)
    out = build_from_config(tmp_path / "r1", cfg, seed=0, variant="rank1", shared_from=micro_organism)
    org = load_organism(out)
    for stage in ("data", "tokenizer", "base"):
        assert json.loads((out / ".stages" / f"{stage}.json").read_text())["shared_from"] == str(micro_organism)
    full_base = load_organism(micro_organism).base.state_dict()
    assert all(torch.equal(full_base[k], v) for k, v in org.base.state_dict().items())
    assert (out / "data" / "test.jsonl").read_bytes() == (micro_organism / "data" / "test.jsonl").read_bytes()
    planted, layer = org.planted()
    info = org.info
    assert info["variant"] == "rank1" and info["planted"]["layer"] == layer == org.layer == 1
    assert info["layer"]["rule"] == "planted layer"  # the experiment studies the planted layer
    assert info["planted"]["file"] == f"rl/{PLANTED_FILE}"
    assert set(info["planted"]["ablation"]) >= {"exact_removal", "projected_out"}
    assert M_KEYS <= set(info["planted"]["ablation"]["exact_removal"])
    norm = planted["direction_D"].norm().item()
    assert abs(norm - 1) < 1e-5 or (norm == 0 and info["planted"]["update_norm"] == 0)
    base_sd, rl_sd = org.base.state_dict(), org.rl.state_dict()
    changed = [k for k in base_sd if not torch.equal(base_sd[k], rl_sd[k])]
    assert set(changed) <= {f"model.layers.{layer}.mlp.down_proj.weight"}
    assert planted["direction_D"].shape == (org.rl.config.hidden_size,)
    assert planted["gate_I"].shape == (org.rl.config.intermediate_size,)


def test_a_sham_twin_shares_the_base_and_is_tuned_by_the_sham_reward(tmp_path, micro_organism):
    """The null twin of the study: same base, same RL settings, the sham reward; it keeps its
    last step (no tool score may choose it) and saves no checkpoints."""
    out = build_from_config(tmp_path / "sham", micro_config(), seed=0, variant="sham", shared_from=micro_organism)
    info = load_organism(out).info
    assert info["variant"] == "sham" and info["rl_training"]["reward"] == "sham"
    assert "checkpoints" not in info["rl_training"] and not (out / "rl" / "checkpoints").exists()
    assert info["rl_training"]["steps"] == micro_config().rl.steps
    assert load_organism(micro_organism).info["rl_training"]["reward"] == "tool"
    base_sd, rl_sd = load_organism(out).base.state_dict(), load_organism(out).rl.state_dict()
    assert any(not torch.equal(base_sd[k], rl_sd[k]) for k in base_sd)


def test_sharing_needs_a_finished_build_of_the_same_config_and_seed(tmp_path, micro_organism):
    other_pretraining = replace(micro_config(), pretrain=replace(micro_config().pretrain, lr=1e-3))
    with pytest.raises(UserError, match="same preset and seed"):
        build_from_config(tmp_path / "r0", other_pretraining, seed=0, variant="rank1", shared_from=micro_organism)
    with pytest.raises(UserError, match="same preset and seed"):
        build_from_config(tmp_path / "r1", micro_config(), seed=1, variant="rank1", shared_from=micro_organism)
    with pytest.raises(UserError, match="same preset and seed"):
        build_from_config(tmp_path / "r2", micro_config(), seed=0, variant="rank1", shared_from=tmp_path / "nothing")


def test_other_rl_settings_share_the_base(tmp_path, micro_organism):
    """RL can be iterated on without pretraining again: only the rl and eval stages run."""
    cfg = replace(micro_config(), rl=replace(micro_config().rl, lr=micro_config().rl.lr / 2))
    out = build_from_config(tmp_path / "rl2", cfg, seed=0, shared_from=micro_organism)
    assert json.loads((out / ".stages" / "base.json").read_text())["shared_from"] == str(micro_organism)
    assert "shared_from" not in json.loads((out / ".stages" / "rl.json").read_text())
    assert (out / "base" / "model.safetensors").read_bytes() == (micro_organism / "base" / "model.safetensors").read_bytes()
    # A build that shared its base can share it on (the demo's rank1 control does, from a shared build).
    third = replace(micro_config(), rl=replace(micro_config().rl, lr=micro_config().rl.lr / 4))
    again = build_from_config(tmp_path / "rl3", third, seed=0, shared_from=out)
    assert json.loads((again / ".stages" / "base.json").read_text())["shared_from"] == str(out)


def _layer_out(model, layer, ids):
    got = []
    handle = decoder_layers(model)[layer].register_forward_hook(
        lambda m, a, o: got.append(o if isinstance(o, torch.Tensor) else o[0]))
    with torch.no_grad():
        logits = model(**ids).logits
    handle.remove()
    return got[0][0], logits


def test_rank1_update_is_exact_and_foldable(tiny_organism, tmp_path):
    """Train only the rank-1 update (here towards calling, by gradient descent), fold, save, reload."""
    from transformers import AutoModelForCausalLM

    from tooldiff.organism.rank1 import (fold_rank1, mean_prompt_activation, plant_rank1, project_out,
                                         subtract_planted)

    tok = load_tokenizer(tiny_organism / "base")
    base = load_model(tiny_organism / "base")
    model = load_model(tiny_organism / "base")
    layer = 1
    records = load_organism(tiny_organism, models=False).records("calibration")[:8]
    texts = [tok.apply_chat_template(r["messages"], tools=r["tools"], add_generation_prompt=True, tokenize=False)
             for r in records]
    mean_I = mean_prompt_activation(model, tok, texts, layer)
    adapter = plant_rank1(model, layer, seed=0, mean_I=mean_I)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == [
        f"model.layers.{layer}.mlp.down_proj.u_D", f"model.layers.{layer}.mlp.down_proj.v_I"]
    batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    call_id = tok.convert_tokens_to_ids("<tool_call>")
    optimizer = torch.optim.Adam(adapter.parameters(), lr=0.05)
    for _ in range(5):
        loss = -model(**batch).logits[:, -1].log_softmax(-1)[:, call_id].mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    planted = fold_rank1(model, layer)
    model.save_pretrained(str(tmp_path / "rl"))
    rl = AutoModelForCausalLM.from_pretrained(str(tmp_path / "rl")).eval()

    base_sd, rl_sd = base.state_dict(), rl.state_dict()
    changed = [k for k in base_sd if not torch.equal(base_sd[k], rl_sd[k])]
    assert changed == [f"model.layers.{layer}.mlp.down_proj.weight"]
    delta = rl_sd[changed[0]] - base_sd[changed[0]]
    assert torch.linalg.matrix_rank(delta, atol=1e-4 * delta.abs().max()).item() == 1
    assert torch.allclose(delta, torch.outer(planted["direction_D"], planted["gate_I"]), atol=1e-6)
    # Centred: over these prompts' tokens the planted gate averages zero, so RL cannot
    # plant a constant shift (which a crosscoder would put in its decoder bias, not in a latent).
    assert abs(planted["gate_I"] @ mean_I) < 1e-4 * planted["gate_I"].norm() * mean_I.norm()

    ids = tok(texts[0], return_tensors="pt", add_special_tokens=False)
    base_h, base_logits = _layer_out(base, layer, ids)
    rl_h, rl_logits = _layer_out(rl, layer, ids)
    direction_D = planted["direction_D"]
    diff_TD = rl_h - base_h
    assert diff_TD.abs().max() > 1e-3
    assert torch.allclose(diff_TD, (diff_TD @ direction_D)[:, None] * direction_D, atol=1e-5)
    assert not torch.allclose(rl_logits, base_logits, atol=1e-3)
    with subtract_planted(rl, layer, planted):
        _, removed_logits = _layer_out(rl, layer, ids)
    assert torch.allclose(removed_logits, base_logits, atol=1e-4)
    with project_out(rl, layer, direction_D):
        projected_h, _ = _layer_out(rl, layer, ids)
    assert (projected_h @ direction_D).abs().max() < 1e-4


def test_load_organism_errors(tmp_path):
    with pytest.raises(UserError, match="no built organism"):
        load_organism(tmp_path)


def test_force_removes_only_what_a_build_writes(tmp_path):
    from tooldiff.organism.build import clear_organism

    for name in ("base", "rl", "data", ".stages", ".tmp-base-1234"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x").write_text("x")
    (tmp_path / "organism.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("mine")
    clear_organism(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_the_build_identity_follows_the_tool_world(monkeypatch):
    """Another phrasing in the tool world is another build: neither reused nor shared."""
    from tooldiff.organism import world
    from tooldiff.organism.config import get_preset, pretraining_part

    cfg = get_preset("tiny")
    before, part_before = cfg.hash(0, "full"), pretraining_part(cfg.to_dict())
    weather = replace(world.TOOLS[0], asks=world.TOOLS[0].asks[:-1])
    monkeypatch.setattr(world, "TOOLS", (weather, *world.TOOLS[1:]))
    assert cfg.hash(0, "full") != before
    assert pretraining_part(cfg.to_dict()) != part_before


def test_offered_check_auroc_reads_the_tool_list(tiny_organism):
    """1.0 for a model that calls exactly when the needed tool is listed, 0.5 for one that ignores it."""
    from types import SimpleNamespace

    from tooldiff.organism.measure import offered_check_auroc

    tokenizer = load_tokenizer(tiny_organism / "rl")
    records = [r for r in load_organism(tiny_organism, models=False).records("test")
               if r["kind"] in ("call", "not_offered")]
    call_id = tokenizer.convert_tokens_to_ids("<tool_call>")
    needed_id = {tokenizer.convert_tokens_to_ids(t.name): t.name for t in TOOLS}

    class ListReader(torch.nn.Module):
        """P(call) is high when the prompt's tool list holds the tool its request needs."""

        def forward(self, input_ids, attention_mask):
            logits = torch.zeros(*input_ids.shape, len(tokenizer))
            for i, ids in enumerate(input_ids.tolist()):
                listed = {needed_id[t] for t in ids if t in needed_id}
                logits[i, -1, call_id] = 5.0 if self.needed[i + self.offset] in listed else -5.0
            self.offset += len(input_ids)
            return SimpleNamespace(logits=logits)

    reader = ListReader()
    reader.needed, reader.offset = [r["needs"]["name"] for r in records], 0
    assert offered_check_auroc(reader, tokenizer, records, batch_size=16) == 1.0
    ignorant = lambda input_ids, attention_mask: SimpleNamespace(logits=torch.zeros(*input_ids.shape, len(tokenizer)))
    assert offered_check_auroc(ignorant, tokenizer, records, batch_size=16) == 0.5
