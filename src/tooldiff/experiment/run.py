"""`tooldiff experiment`: rank features per crosscoder, build the grid, run it, analyse it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch

from tooldiff.crosscoder.model import CONFIG_FILE
from tooldiff.crosscoder.train import METRICS_FILE
from tooldiff.errors import UserError
from tooldiff.experiment.analysis import add_effects, add_verdicts, sweep_summary
from tooldiff.experiment.candidates import build_candidates
from tooldiff.experiment.conditions import A, B, crosscoder_conditions, none_conditions, transfer_conditions
from tooldiff.experiment.config import ExperimentConfig
from tooldiff.experiment.data import CALIBRATION_FILE, calibration_acts, stratified_sample
from tooldiff.experiment.runner import run_conditions
from tooldiff.experiment.splice_loss import loss_texts, splice_losses
from tooldiff.experiment.summary import ExperimentSummary, summary_of, write_summary
from tooldiff.features import CalibrationActs, plot_d_vs_delta, rank_features
from tooldiff.features.ranking import write_ranking
from tooldiff.pair import ModelPair, write_records


def load_crosscoders(directory: Path, pair: ModelPair) -> dict:
    """Every checkpoint under `directory` (itself or one level down); all must fit the pair."""
    from tooldiff.crosscoder import Crosscoder

    dirs = [directory] if (directory / CONFIG_FILE).is_file() else sorted(
        p.parent for p in directory.glob(f"*/{CONFIG_FILE}"))
    if not dirs:
        raise UserError(f"no crosscoder checkpoints under {directory}")
    ccs = {d.name: Crosscoder.load(d) for d in dirs}
    for name, cc in ccs.items():
        _check_pair(name, cc, pair)
    if len({cc.info.layer for cc in ccs.values()}) != 1:
        raise UserError(f"the crosscoders under {directory} were trained on different layers; run one layer at a time")
    return ccs


def _check_pair(name: str, cc, pair: ModelPair) -> None:
    if cc.info.models:
        want = [str(Path(pair.rl).resolve()), str(Path(pair.base).resolve())]
        have = [str(Path(m).resolve()) for m in cc.info.models]
        if have != want:
            raise UserError(f"crosscoder {name} was trained on models {cc.info.models}, not this pair's "
                            f"(rl, base) = ({pair.rl}, {pair.base})")
    if cc.info.layer is None:
        raise UserError(f"crosscoder {name} records no layer; retrain it with `tooldiff train`")


def _harvest_calibration(pair: ModelPair, layer: int, out: Path, device: str) -> CalibrationActs:
    from tooldiff.activations import harvest_pair

    records_file = write_records(pair.records("calibration"), out / CALIBRATION_FILE)
    acts_dir = out / "calibration_acts"
    harvest_pair(base=str(pair.base), rl=str(pair.rl), layer=layer, data=records_file, out=acts_dir,
                 positions="decision", device=device)
    return calibration_acts(acts_dir, records_file)


def _rank(name: str, cc, acts: CalibrationActs, out: Path, crosscoder_dir: Path) -> dict:
    ranking = rank_features(cc, acts)
    path = write_ranking(out, name, ranking, crosscoder_dir)
    plot_d_vs_delta(ranking, path.with_suffix(".png"), title=f"{name}: tool-feature candidates")
    return ranking


def checkpoint_dir(crosscoders: Path, name: str) -> Path:
    """The checkpoint of crosscoder `name` under `crosscoders` (a sweep directory, or one checkpoint)."""
    return crosscoders if (crosscoders / CONFIG_FILE).is_file() else crosscoders / name


def existing_checkpoint(crosscoders: Path, name: str, experiment: Path) -> Path:
    """`checkpoint_dir` of crosscoder `name`, ranked by `experiment`; missing is one UserError line."""
    directory = checkpoint_dir(Path(crosscoders), name)
    if not (directory / CONFIG_FILE).is_file():
        raise UserError(f"crosscoder {name!r} of {experiment} is not at {directory}; pass its directory with --crosscoders")
    return directory


def planted_check(cc, planted_D: torch.Tensor, top: list[int], acts: CalibrationActs) -> dict:
    """Positive control: cosine of RL decoder directions with the planted rank-1 direction, and how
    much of the planted change the top-ranked latent carries at the decision position.

    The crosscoder sits at the planted layer, where RL minus base is exactly g(x)·u, so
    (x_RL − x_base)·û is the planted shift of each calibration row; the latent's part of it is
    f·(d·û) with f encoded from RL alone, as an ablation in RL removes it. A share below 1 is
    what latent ablation leaves behind (the error term and other latents hold the rest)."""
    span = cc.model_latents(A)
    dec_LD = torch.stack([cc.decoder_vector(i, A, raw=True) for i in range(span.start, span.stop)])
    cos_L = torch.nn.functional.cosine_similarity(dec_LD, planted_D[None].float(), dim=1)
    best = int(cos_L.abs().argmax()) + span.start
    found = {"best_latent": best, "best_abs_cosine": float(cos_L.abs().max()), "best_group": cc.latent_group(best),
             "top_ranked_latent": top[0] if top else None,
             "top_ranked_abs_cosine": float(cos_L[top[0] - span.start].abs()) if top else None}
    if top:
        unit_D = planted_D.float() / planted_D.float().norm()
        x_ND = acts.x_NMD[:, A].float()
        shift_N = (x_ND - acts.x_NMD[:, B].float()) @ unit_D
        with torch.no_grad():
            part_N = cc.encode_single(x_ND, A)[:, top[0]] * (cc.decoder_vector(top[0], A, raw=True) @ unit_D)
        found |= {"planted_shift": float(shift_N.mean()), "top_latent_part": float(part_N.mean()),
                  "captured_share": float(part_N.mean() / shift_N.mean()) if shift_N.mean().abs() > 1e-6 else None,
                  "captured_n": len(shift_N)}
    return found


def run_experiment(pair: ModelPair, crosscoders: Path, out: Path, config: ExperimentConfig) -> ExperimentSummary:
    """Run the whole grid on `pair` (its calibration and test prompts, its planted direction if
    any); returns the analysed results (also written to out/experiment.json)."""
    tokenizer, base, rl = pair.load_models(config.device)
    ccs, layer, acts, rankings, cands = _select(pair, Path(crosscoders), out, config)
    test = stratified_sample(pair.records("test"), config.n_per_kind, config.seed, pair.source("test"))
    models, planted_D = {"base": base, "rl": rl}, pair.planted_D
    conditions, positive = none_conditions(config.positions), {}
    for name, cand in cands.items():
        conditions += crosscoder_conditions(name, layer, config, cand)
        if planted_D is not None:
            positive[name] = planted_check(ccs[name], planted_D, cand.top, acts)
    results = run_conditions(conditions, models, tokenizer, test, ccs, out / "results.jsonl", config)
    n_texts = config.loss_texts if config.runs("splice") else 0  # no splice, no loss recovered
    texts = loss_texts(pair.records("calibration"), tokenizer, n_texts, config.seed) if n_texts else {}
    losses = splice_losses(ccs, models, tokenizer, texts, layer, config.positions) if texts else []
    return _analysed(results, test, config, out, layer=layer, rankings=rankings,
                     crosscoders={n: _train_metrics(Path(crosscoders), n) for n in ccs},
                     positive_control=positive, splice_loss=[x.to_dict() for x in losses])


def run_transfer(source: ModelPair, crosscoders: Path, target: Path, out: Path,
                 config: ExperimentConfig) -> ExperimentSummary:
    """Transfer without retraining into another model of the pair's family: the top latent of each
    crosscoder of `source`, selected on source's calibration split exactly as run_experiment
    selects it, added into the model at `target` at config.doses, beside the same panel (random
    directions, unrelated latents, the difference-of-means rivals). `target` takes the conditions'
    "base" slot (an RL checkpoint with headroom, say); "rl" stays source's RL model."""
    tokenizer, model, rl = replace(source, base=Path(target)).load_models(config.device)
    ccs, layer, _, rankings, cands = _select(source, Path(crosscoders), out, config)
    test = stratified_sample(source.records("test"), config.n_per_kind, config.seed, source.source("test"))
    conditions = none_conditions(config.positions)
    for name, cand in cands.items():
        conditions += transfer_conditions(name, layer, config, cand) if cand.top else []
    results = run_conditions(conditions, {"base": model, "rl": rl}, tokenizer, test, ccs, out / "results.jsonl", config)
    return _analysed(results, test, config, out, layer=layer, rankings=rankings, target=str(target),
                     crosscoders={n: _train_metrics(Path(crosscoders), n) for n in ccs})


def _select(pair: ModelPair, crosscoders: Path, out: Path, config: ExperimentConfig):
    """(crosscoders, layer, calibration acts, rankings, candidates): the selection on `pair`'s
    calibration split, one ranking file per crosscoder under `out`."""
    ccs = load_crosscoders(crosscoders, pair)
    layer = next(iter(ccs.values())).info.layer
    out.mkdir(parents=True, exist_ok=True)
    acts = _harvest_calibration(pair, layer, out, config.device)
    rankings = {name: _rank(name, cc, acts, out, checkpoint_dir(crosscoders, name)) for name, cc in ccs.items()}
    cands = {name: build_candidates(cc, rankings[name], acts, config.contrast, config.top_s, config.n_unrelated,
                                    config.n_random, config.seed, config.pool) for name, cc in ccs.items()}
    return ccs, layer, acts, rankings, cands


def _analysed(results: dict, test: list[dict], config: ExperimentConfig, out: Path, **fields) -> ExperimentSummary:
    """Effects and verdicts on the test prompts, written to out/experiment.json."""
    add_effects(results, [r["kind"] for r in test], config.seed, config.n_boot)
    add_verdicts(results)
    summary = summary_of({"n_test": len(test), "test_ids": [r["id"] for r in test], "config": config.model_dump(),
                          "conditions": list(results.values()), "sweep": sweep_summary(results), **fields})
    write_summary(summary, out)
    return summary


def _train_metrics(root: Path, name: str) -> dict:
    candidate = checkpoint_dir(root, name) / METRICS_FILE
    return json.loads(candidate.read_text()) if candidate.is_file() else {}
