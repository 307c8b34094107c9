"""Build orchestration: stages, caching, resumption and organism.json.

Stages, each written atomically and then marked done (see store.py):
  data       DIR/data/{pretrain,rl,calibration,test,generic}.jsonl
  tokenizer  DIR/tokenizer/ (trained BPE + chat template)
  base       DIR/base/  (pretrained Qwen2ForCausalLM + tokenizer)
  rl         DIR/rl/    (GRPO-tuned copy + tokenizer; rank1: + planted_direction.safetensors)
  eval       DIR/eval/  (greedy test outputs and metrics of both models, the layer scan)
and last DIR/organism.json, whose presence with the same config hash means "complete: reuse".

Every stage after `data` reads its inputs back from disk the way later stages (and users) do,
so what is measured is what was saved.
"""

from __future__ import annotations

import itertools
import json
import platform
import shutil
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import torch

from tooldiff.artifacts import write_artifact
from tooldiff.errors import UserError
from tooldiff.hf import load_model, load_tokenizer, render_prompt, save_model
from tooldiff.organism.config import OrganismConfig, check_variant, get_preset, pretraining_part
from tooldiff.organism.corpus import CorpusMix, iter_documents
from tooldiff.organism.info import INFO_FILE, OrganismInfo
from tooldiff.organism.recipe import recipe
from tooldiff.organism.world import TOOLS
from tooldiff.progress import console
from tooldiff.threads import one_thread, torch_threads
from tooldiff.organism.store import (
    STAGES_DIR,
    TMP_PREFIX,
    StageMarkers,
    atomic_dir,
    read_jsonl,
    remove_stale_temporaries,
    write_json_atomic,
    write_jsonl,
)

STAGES = ("data", "tokenizer", "base", "rl", "eval")
OUR_ENTRIES = ("data", "tokenizer", "base", "rl", "eval", INFO_FILE, STAGES_DIR)
SPLITS = ("pretrain", "rl", "calibration", "test")
RANK1_MEAN_PROMPTS = 512  # rl-split prompts whose mean MLP activation (all tokens) centres the rank1 gate


@dataclass
class Build:
    out: Path
    cfg: OrganismConfig
    seed: int
    variant: str
    build_hash: str
    threads: int = 1  # torch threads of the base and RL stages (the others run at one)

    def data(self, split: str) -> list[dict]:
        return read_jsonl(self.out / "data" / f"{split}.jsonl")


# --- directory policy -------------------------------------------------------------------------
def read_info(out: Path) -> dict | None:
    try:
        return json.loads((out / INFO_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def is_complete(out: Path, build_hash: str) -> bool:
    info = read_info(out)
    return bool(info) and info.get("config_hash") == build_hash and all(
        (out / d / "config.json").is_file() for d in ("base", "rl"))


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f"{TMP_PREFIX}probe"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise UserError(f"cannot write to {out}: {e.strerror or e}") from None


def clear_organism(out: Path) -> None:
    """Remove what a build writes (and nothing else a user may keep in DIR)."""
    for name in OUR_ENTRIES:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    remove_stale_temporaries(out)


def prepare_dir(out: Path, build_hash: str, force: bool) -> bool:
    """True when DIR already holds this exact build (reuse); raise if DIR holds something else."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    if not force and is_complete(out, build_hash):
        return True
    if out.is_dir() and any(out.iterdir()):
        resumable = StageMarkers(out, build_hash).any_for_this_build()
        if force:
            clear_organism(out)
        elif not resumable:
            what = "another organism (other config, seed or variant)" if read_info(out) or (
                out / STAGES_DIR).exists() else "other files"
            raise UserError(f"{out} already exists and holds {what}; pass --force to rebuild there")
    _check_writable(out)
    return False


# --- stages -------------------------------------------------------------------------------------
def stage_data(b: Build) -> dict:
    from tooldiff.organism.prose import generic_records
    from tooldiff.organism.requests import make_splits

    splits = make_splits(b.cfg.splits, b.seed)
    with atomic_dir(b.out / "data") as tmp:
        for name in SPLITS:
            write_jsonl(tmp / f"{name}.jsonl", splits[name])
        write_jsonl(tmp / "generic.jsonl", generic_records(b.cfg.generic_per_split, b.cfg.generic_per_split, b.seed))
    return {name: len(splits[name]) for name in SPLITS} | {"generic": 2 * b.cfg.generic_per_split}


def _world_words() -> list[str]:
    from tooldiff.organism import world

    pools = [world.CITIES, world.CONTACTS, world.RESTAURANTS, world.WORDS, world.UNITS, world.CURRENCIES,
             world.GENRES, world.LANGUAGES]
    numbers = [str(n) for n in range(1, 100)]
    names = [t.name for t in world.TOOLS] + [p.name for t in world.TOOLS for p in t.params]
    keys = ['"name":"', '"arguments":'] + [f'"{p.name}":' + ('"' if p.type == "string" else "")
                                            for t in world.TOOLS for p in t.params]
    return [w for pool in pools for w in pool] + numbers + names + keys + ["true", "false"]


def stage_tokenizer(b: Build) -> dict:
    from tooldiff.organism.tokenizer import check_single_tokens, save_tokenizer, train_tokenizer

    docs = list(itertools.islice(iter_documents(b.data("pretrain"), b.cfg.corpus, b.seed), b.cfg.tokenizer_docs))
    tokenizer = train_tokenizer(docs, b.cfg.vocab_size)
    check_single_tokens(tokenizer, _world_words())
    with atomic_dir(b.out / "tokenizer") as tmp:
        save_tokenizer(tokenizer, tmp)
    return {"vocab": len(tokenizer)}


def _save_model(model, tokenizer_dir: Path, final: Path, extra=None) -> None:
    from tooldiff.organism.tokenizer import save_tokenizer

    with atomic_dir(final) as tmp:
        save_model(model, tmp)
        save_tokenizer(load_tokenizer(tokenizer_dir), tmp)
        if extra:
            extra(tmp)


def _drill_mix(corpus: CorpusMix, transcripts: float = 0.0) -> CorpusMix:
    """Call logs, with a share of chat transcripts."""
    return replace(corpus, transcript=transcripts, api_log=1.0 - transcripts, prose=0.0)


def pretraining_plan(cfg: OrganismConfig) -> list[tuple[CorpusMix, str, int]]:
    """The base's phases in order, as (documents, stream name, steps): call logs with one tool on
    offer, call logs with 1-4, then the mixed corpus. Phases without steps are left out."""
    p, drill = cfg.pretrain, _drill_mix(cfg.corpus)
    plan = [(replace(drill, log_max_offered=1), "drill-one-tool", p.one_tool_drill_steps),
            (drill, "drill", p.drill_steps - p.one_tool_drill_steps), (cfg.corpus, "corpus", p.steps)]
    return [phase for phase in plan if phase[2]]


def stage_base(b: Build) -> dict:
    from tooldiff.organism.pretrain import build_model, document_rows, pretrain

    tokenizer = load_tokenizer(b.out / "tokenizer")
    p = b.cfg.pretrain
    records = b.data("pretrain")
    phases = [document_rows(iter_documents(records, mix, b.seed, stream=stream), tokenizer,
                            steps * p.batch_size, p.max_doc_len) for mix, stream, steps in pretraining_plan(b.cfg)]
    model = build_model(b.cfg.model, tokenizer, b.seed)
    with torch_threads(b.threads):
        losses = pretrain(model, phases, p, b.seed, tokenizer.pad_token_id)
        copying = _drill_until_it_copies(b, model, tokenizer, records, losses)
    _save_model(model, b.out / "tokenizer", b.out / "base")
    tail = losses[-max(1, len(losses) // 20):]
    tokens = sum(len(row) for rows in phases for row in rows) + copying.pop("tokens", 0)
    return {"params": sum(t.numel() for t in model.parameters()), "tokens": tokens,
            "final_loss": sum(tail) / len(tail), "threads": b.threads, **copying}


def _drill_until_it_copies(b: Build, model, tokenizer, records: list[dict], losses: list[float]) -> dict:
    """More call-log steps, a chunk at a time, while the base's forced calls on calibration prompts
    stay below FORCED_CALLS_FLOOR, overall or for any one tool (PretrainConfig says why). Each chunk's
    logs weight the tools by how often their forced calls are still wrong. Extends `losses` in place."""
    from tooldiff.organism.measure import FORCED_CALLS_FLOOR, forced_call_accuracy
    from tooldiff.organism.pretrain import document_rows, pretrain

    p = b.cfg.pretrain
    if not p.copy_check:
        return {}
    calls = [r for r in b.data("calibration") if r.get("gold")][:p.copy_check]

    def check() -> dict:
        return forced_call_accuracy(model, tokenizer, calls, b.seed, b.cfg.eval_batch_size)

    def lagging(result: dict) -> bool:
        return min([result["mean"], *result["by_tool"].values()]) < FORCED_CALLS_FLOOR

    history, extra, tokens = [check()], 0, 0
    while lagging(history[-1]) and extra < p.max_extra_drill_steps:
        console.print(f"the base copies on {history[-1]['mean']:.0%} of {len(calls)} calibration calls "
                      f"(by tool: {_percentages(history[-1]['by_tool'])}): "
                      f"{p.extra_drill_chunk} more call-log steps")
        mix = replace(_drill_mix(b.cfg.corpus, transcripts=p.extra_drill_transcripts),
                      log_focus=_focus_on_errors(history[-1]["by_tool"]))
        rows = document_rows(iter_documents(records, mix, b.seed, stream=f"drill-more-{extra}"), tokenizer,
                             p.extra_drill_chunk * p.batch_size, p.max_doc_len)
        # A fresh short schedule at half the peak lr: what turned seed 1 from 19 % to 76 %.
        chunk = replace(p, steps=0, drill_steps=p.extra_drill_chunk, one_tool_drill_steps=0, warmup_steps=10,
                        lr=p.lr / 2)
        losses += pretrain(model, [rows], chunk, b.seed + extra + 1, tokenizer.pad_token_id)
        extra, tokens = extra + p.extra_drill_chunk, tokens + sum(map(len, rows))
        history.append(check())
    return {"extra_drill_steps": extra, "forced_calls_calibration": [h["mean"] for h in history],
            "forced_calls_by_tool": history[-1]["by_tool"], "tokens": tokens}


def _percentages(shares: dict[str, float]) -> str:
    return ", ".join(f"{name} {share:.0%}" for name, share in shares.items())


def _focus_on_errors(by_tool: dict[str, float]) -> tuple[tuple[str, float], ...]:
    """Log weights for the extra drill: each tool's error rate on forced calls, plus a floor that
    keeps the tools the base already copies in the mix (with only the lagging tools' logs the base
    forgot the rest; docs/organism.md, "Enum arguments"). Tools not checked get the floor."""
    floor = 0.1
    return tuple((t.name, 1.0 - by_tool.get(t.name, 1.0) + floor) for t in TOOLS)


def stage_rl(b: Build) -> dict:
    from tooldiff.organism.grpo import run_grpo
    from tooldiff.organism.rank1 import (PLANTED_FILE, fold_rank1, mean_prompt_activation, middle_layer,
                                         plant_rank1, save_planted)

    tokenizer = load_tokenizer(b.out / "base")
    model = load_model(b.out / "base")
    rl = b.cfg.rl
    layer = None
    if b.variant == "rank1":
        layer = rl.rank1_layer if rl.rank1_layer is not None else middle_layer(model)
        prompts = [render_prompt(tokenizer, r) for r in b.data("rl")[:RANK1_MEAN_PROMPTS]]
        plant_rank1(model, layer, b.seed, mean_prompt_activation(model, tokenizer, prompts, layer))
        # 2 vectors at their own lr, steps and prompt mix; the mix already favours calling, so no
        # call-first curriculum (with the full RL's 20 such steps the plant was weak: calls on 65 %).
        rl = replace(rl, kind_shares=rl.rank1_kind_shares, lr=rl.rank1_lr, steps=rl.rank1_steps or rl.steps,
                     call_first_steps=0)
    keeper = _checkpoint_keeper(b, model, tokenizer) if b.variant == "full" and rl.checkpoint_steps() else None
    # The sham twin: the same RL on the same prompts with a reward that ignores tool use (reward.py).
    reward = "sham" if b.variant == "sham" else "tool"
    with torch_threads(b.threads):
        history = run_grpo(model, tokenizer, b.data("rl"), rl, b.seed, on_checkpoint=keeper, reward=reward)
    extra, summary = None, {}
    if keeper is not None:
        kept = keeper.restore_best()
        extra, summary = keeper.save, {"checkpoints": keeper.summary(kept)}
        console.print(f"RL twin kept: {kept.describe(rl.steps)} (selection strict on call prompts "
                      f"{kept.score.call_strict:.2f}, wrong calls {_percentages(kept.score.wrong_calls)})")
    if layer is not None:
        planted = fold_rank1(model, layer)
        extra = lambda tmp: save_planted(planted, layer, tmp / PLANTED_FILE)  # noqa: E731
        # ‖ΔW‖ = ‖u‖·‖v‖ = ‖gate_I‖ (the direction is a unit vector): 0 means RL planted nothing.
        summary = {"planted_layer": layer, "planted_file": f"rl/{PLANTED_FILE}",
                   "update_norm": float(planted["gate_I"].norm())}
    _save_model(model, b.out / "base", b.out / "rl", extra)
    rewards = [h["reward"] for h in history if "reward" in h]
    k = max(1, len(rewards) // 5)
    return summary | {"threads": b.threads, "steps": rl.steps, "reward": reward, "reward_first": sum(rewards[:k]) / k,
                      "reward_last": sum(rewards[-k:]) / k}


def _checkpoint_keeper(b: Build, model, tokenizer):
    """Scores the full twin on calibration and validation prompts during RL (checkpoints.py); the rank1 control
    keeps its last step (its RL must plant a direction, whatever its wrong calls), and so does the
    sham twin (its RL must not teach tool use, so no tool score may choose it)."""
    from tooldiff.organism.checkpoints import CheckpointKeeper
    from tooldiff.organism.checkpoints import selection_prompts
    from tooldiff.organism.requests import KindMix, validation_split

    mix = KindMix(*b.cfg.rl.eval_prompts)
    prompts = selection_prompts(b.data("calibration"), mix) + validation_split(mix, b.seed)
    return CheckpointKeeper(model, tokenizer, prompts, b.seed, b.cfg.eval_batch_size, b.cfg.rl.average_from)


def _rank1_ablation(b: Build, rl_model, tokenizer, test: list[dict]) -> dict:
    from tooldiff.organism.measure import evaluate
    from tooldiff.organism.rank1 import PLANTED_FILE, load_planted, project_out, subtract_planted

    planted, layer = load_planted(b.out / "rl" / PLANTED_FILE)
    with subtract_planted(rl_model, layer, planted):
        exact, _ = evaluate(rl_model, tokenizer, test, b.seed, b.cfg.eval_batch_size, "rl, planted update removed")
    with project_out(rl_model, layer, planted["direction_D"]):
        projected, _ = evaluate(rl_model, tokenizer, test, b.seed, b.cfg.eval_batch_size,
                                "rl, direction projected out")
    return {"layer": layer, "exact_removal": exact, "projected_out": projected}


def stage_eval(b: Build) -> dict:
    from tooldiff.organism.measure import evaluate, forced_call_accuracy, layer_scan, offered_check_auroc

    tokenizer = load_tokenizer(b.out / "rl")
    base, rl = load_model(b.out / "base"), load_model(b.out / "rl")
    test, calibration = b.data("test"), b.data("calibration")
    result = {}
    with atomic_dir(b.out / "eval") as tmp:
        for name, model in (("base", base), ("rl", rl)):
            metrics, outputs = evaluate(model, tokenizer, test, b.seed, b.cfg.eval_batch_size, f"{name} on test")
            result[name] = metrics
            write_jsonl(tmp / f"{name}_test_outputs.jsonl",
                        [{"id": r["id"], "kind": r["kind"], "output": o} for r, o in zip(test, outputs)])
        result["base"]["forced_call_strict"] = forced_call_accuracy(base, tokenizer, test, b.seed,
                                                                    b.cfg.eval_batch_size)
        for name, model in (("base", base), ("rl", rl)):
            result[name]["offered_check_auroc"] = offered_check_auroc(model, tokenizer, test, b.cfg.eval_batch_size)
        result["layer"] = layer_scan(base, rl, tokenizer, calibration, b.cfg.eval_batch_size)
        if b.variant == "rank1":
            result["rank1_ablation"] = _rank1_ablation(b, rl, tokenizer, test)
        write_json_atomic(tmp / "metrics.json", result)
    return {}


STAGE_FUNCS = {"data": stage_data, "tokenizer": stage_tokenizer, "base": stage_base, "rl": stage_rl,
               "eval": stage_eval}


# --- organism.json ------------------------------------------------------------------------------
def _versions() -> dict:
    import transformers
    import trl

    return {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__,
            "python": platform.python_version()}


def write_info(b: Build, markers: StageMarkers, preset: str) -> OrganismInfo:
    """organism.json of the finished build, written through its typed model (info.py)."""
    stage_info = {s: markers.get(s) for s in STAGES}
    evaluation = json.loads((b.out / "eval" / "metrics.json").read_text())
    rl_info = stage_info["rl"]
    info = OrganismInfo.new(
        preset=preset, seed=b.seed, variant=b.variant, config_hash=b.build_hash, config=b.cfg.to_dict(),
        recipe=recipe(b.cfg.to_dict()),
        built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        torch_threads={"base": stage_info["base"].get("threads", 1), "rl": rl_info.get("threads", 1),
                       "other stages": torch.get_num_threads()},
        versions=_versions(),
        build_seconds={s: stage_info[s]["seconds"] for s in STAGES}
        | {"total": round(sum(stage_info[s]["seconds"] for s in STAGES), 2)},
        paths={"base": "base", "rl": "rl", "tokenizer": "tokenizer",
               "data": {s: f"data/{s}.jsonl" for s in (*SPLITS, "generic")}, "eval": "eval"},
        data=stage_info["data"] | {"generic_note": "generic.jsonl rows carry split: calibration | test"},
        model=_model_info(stage_info),
        rl_training={k: v for k, v in rl_info.items() if k not in ("hash", "seconds")},
        metrics={"split": "test", "base": evaluation["base"], "rl": evaluation["rl"]},
        layer=_layer_choice(b, evaluation["layer"], rl_info),
        **({"planted": _planted(rl_info, evaluation)} if b.variant == "rank1" else {}),
    )
    write_artifact(info, b.out / INFO_FILE, indent=2)
    return info


def _model_info(stage_info: dict) -> dict:
    base = stage_info["base"]
    return {"params": base["params"], "pretrain_tokens": base["tokens"], "pretrain_final_loss": base["final_loss"],
            "vocab": stage_info["tokenizer"]["vocab"], "extra_drill_steps": base.get("extra_drill_steps", 0),
            "forced_calls_calibration": base.get("forced_calls_calibration"),
            "forced_calls_by_tool": base.get("forced_calls_by_tool")}


def _layer_choice(b: Build, layer: dict, rl_info: dict) -> dict:
    return {
        **layer,  # first: its own "recommended" (the AUROC rule) must not override the planted layer
        "recommended": rl_info.get("planted_layer", layer["recommended"]),
        "rule": "planted layer" if b.variant == "rank1" else
        "max held-out AUROC of the RL difference-of-means direction (should-call minus no-call, "
        "decision position, calibration split); near-ties go to the middle layer",
    }


def _planted(rl_info: dict, evaluation: dict) -> dict:
    return {"layer": rl_info["planted_layer"], "file": rl_info["planted_file"], "update_norm": rl_info["update_norm"],
            "tensors": {"direction_D": "unit direction in the residual stream after the layer",
                        "gate_I": "gate readout of the layer's MLP activation: g = gate_I . m(x)"},
            "ablation": evaluation["rank1_ablation"]}


SHARED_STAGES = ("data", "tokenizer", "base")  # what does not depend on the variant


def copy_shared_stages(source: Path, b: Build, markers: StageMarkers) -> None:
    """Copy the stages that do not depend on the variant or the RL settings from a finished build.

    The source must be complete (organism.json written), with the same seed and the same
    pretraining config (data, tokenizer, model, pretraining); its RL settings and variant may
    differ, so that RL can be iterated on without pretraining again. Anything else is a user
    error rather than a silent rebuild.
    """
    info = read_info(source)
    same_base = info is not None and info.get("seed") == b.seed and \
        pretraining_part(info.get("config", {})) == pretraining_part(b.cfg.to_dict())
    if not same_base:
        raise UserError(f"{source} is not a finished organism of the same preset and seed; cannot share its base")
    for stage in SHARED_STAGES:
        if markers.get(stage):
            continue
        marker = StageMarkers(source, info["config_hash"]).get(stage)
        if marker is None:
            raise UserError(f"{source} has no finished {stage} stage to share")
        with atomic_dir(b.out / stage) as tmp:
            shutil.copytree(source / stage, tmp, dirs_exist_ok=True)
        extra = {k: v for k, v in marker.items() if k not in ("hash", "seconds", "shared_from")}
        markers.mark(stage, marker["seconds"], shared_from=str(source), **extra)
        console.print(f"stage {stage}: copied from {source}")


# --- entry point --------------------------------------------------------------------------------
def build_organism(out: str | Path, preset: str = "default", seed: int = 0, variant: str = "full",
                   force: bool = False, shared_from: str | Path | None = None, threads: int = 1) -> Path:
    """Build (or reuse, or resume) the organism in `out`; returns `out`.

    `shared_from`: a finished build with the same seed and pretraining config (any variant or RL
    settings), whose data, tokenizer and base are copied instead of rebuilt.
    `threads`: torch threads for pretraining the base and for RL (cores that nothing else uses; see
    threads.py).
    It is not part of the build's identity, but float sums in another order make a base that
    differs in its last bits.
    """
    return build_from_config(Path(out), get_preset(preset), seed, variant, force, preset_name=preset,
                             shared_from=Path(shared_from) if shared_from else None, threads=threads)


def build_from_config(out: Path, cfg: OrganismConfig, seed: int = 0, variant: str = "full", force: bool = False,
                      preset_name: str | None = None, shared_from: Path | None = None, threads: int = 1) -> Path:
    check_variant(variant)
    if threads < 1:
        raise UserError(f"threads must be at least 1, got {threads}")
    build_hash = cfg.hash(seed, variant)
    if prepare_dir(out, build_hash, force):
        console.print(f"[green]reusing[/] the organism in {out} (same config, seed and variant)")
        return out
    remove_stale_temporaries(out)
    b = Build(out=out, cfg=cfg, seed=seed, variant=variant, build_hash=build_hash, threads=threads)
    markers = StageMarkers(out, build_hash)
    # Claims DIR for this build before any stage writes: a crash between a stage's rename and its
    # marker then leaves a DIR a rerun resumes (redoing that stage), not one it refuses.
    markers.mark("started", 0.0)
    with one_thread():
        if shared_from is not None:
            copy_shared_stages(shared_from, b, markers)
        for stage in STAGES:
            if done := markers.get(stage):
                if "shared_from" not in done:  # a copied stage was announced when it was copied
                    console.print(f"stage {stage}: done in an earlier run, kept")
                continue
            console.print(f"[bold]stage {stage}[/] ({cfg.name}, seed {seed}, {variant})")
            start = time.perf_counter()
            extra = STAGE_FUNCS[stage](b)
            markers.mark(stage, time.perf_counter() - start, **extra)
        info = write_info(b, markers, preset_name or cfg.name)
    m = info.metrics
    call = {name: m[name]["by_kind"]["call"]["strict"]["mean"] for name in ("base", "rl")}
    console.print(f"[green]organism ready[/] in {out}: strict on tool-needed prompts base {call['base']:.2f}, "
                  f"rl {call['rl']:.2f}; rl FPR {m['rl']['trigger']['fpr']:.2f} "
                  f"(not offered {m['rl']['fpr_by_kind'].get('not_offered', 0):.2f}, "
                  f"chit-chat {m['rl']['fpr_by_kind'].get('chitchat', 0):.2f}); layer {info.layer.recommended}; "
                  f"{info.build_seconds['total']:.0f} s")
    _warn_if_the_base_cannot_copy(m["base"])
    return out


def _warn_if_the_base_cannot_copy(base_metrics: dict) -> None:
    from tooldiff.organism.measure import FORCED_CALLS_FLOOR

    forced = base_metrics.get("forced_call_strict")
    if forced is not None and forced["mean"] < FORCED_CALLS_FLOOR:
        console.print(f"[yellow]warning:[/] the base writes a right call on only {forced['mean']:.0%} of tool-needed "
                      "test prompts when made to start one: pretraining did not teach it to copy arguments, and RL "
                      "cannot (try another seed; docs/organism.md)")
