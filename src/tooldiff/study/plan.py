"""`tooldiff run CONFIG --plan`: the work of a study, estimated from the model configs alone.

No weights and no data are read: row counts come from each source's `limit`, prompt lengths
from its `mean_tokens`. Times divide each stage's work by the rate tooldiff itself reached on a
GPU (`runtime.gpu`, tooldiff.study.rates; measured by benchmarks/gpu_paper_scale.py): the
harvest and crosscoder steps in FLOPs per second, generation in decoding steps per second
(launch-bound, so not a FLOP count). Prompt lengths are guesses, so the plan is right within
tens of percent for the measured GPU, not a promise; other GPUs have no measured rates yet.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from tooldiff.crosscoder.config import SweepConfig
from tooldiff.errors import UserError
from tooldiff.experiment import ExperimentConfig, load_experiment_config
from tooldiff.experiment.conditions import CONTROL_DOSES
from tooldiff.hf import check_config_pair, config_dims, load_config
from tooldiff.study.config import DataSource, StudyConfig
from tooldiff.study.rates import GpuRates, get_rates, harvest_flops_per_token, train_flops_per_step
from tooldiff.prompts import REQUEST_KINDS

DTYPE_BYTES = {"float32": 4, "fp32": 4, "bfloat16": 2, "bf16": 2, "float16": 2, "fp16": 2}
N_DOM_RIVALS = 2  # experiment.candidates: call_vs_nocall and rl_minus_base


@dataclass
class StageEstimate:
    stage: str
    tokens: int
    disk_bytes: int
    memory_bytes: int
    seconds: float
    note: str = ""


@dataclass
class Plan:
    model: dict
    rates: GpuRates
    stages: list[StageEstimate] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def total_seconds(self) -> float:
        return sum(s.seconds for s in self.stages)

    def to_dict(self) -> dict:
        return {"model": self.model, "rates": asdict(self.rates), "stages": [asdict(s) for s in self.stages],
                "total_seconds": self.total_seconds, "warnings": self.warnings}


def _get(cfg: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        value = getattr(cfg, name, None)
        if value is not None:
            return value
    return default


def model_shape(cfg: Any) -> dict:
    """Parameter counts of a decoder from its config (gated MLP for Llama-style families)."""
    d, n_layers = config_dims(cfg)
    vocab = int(_get(cfg, "vocab_size"))
    heads = int(_get(cfg, "num_attention_heads", "n_head"))
    kv_heads = int(_get(cfg, "num_key_value_heads", default=heads))
    head_dim = int(_get(cfg, "head_dim", default=d // heads))
    inner = int(_get(cfg, "intermediate_size", "n_inner", default=4 * d))
    gated = cfg.model_type not in ("gpt2", "gpt_neox")
    attn = d * heads * head_dim * 2 + d * kv_heads * head_dim * 2
    mlp = (3 if gated else 2) * d * inner
    per_layer = attn + mlp + 2 * d
    embed = vocab * d
    tied = bool(_get(cfg, "tie_word_embeddings", default=True))
    total = embed + n_layers * per_layer + d + (0 if tied else embed)
    return {"model_type": cfg.model_type, "d_model": d, "n_layers": n_layers, "vocab": vocab,
            "params": total, "params_per_layer": per_layer, "embed_params": embed, "intermediate": inner,
            "kv_dim": kv_heads * head_dim}


def _rows_tokens(sources: list[DataSource], positions: str) -> tuple[int, int, int]:
    """(prompts, tokens, harvested rows) of a data split; a source without `limit` is an error."""
    prompts = tokens = 0
    for src in sources:
        if src.limit is None:
            raise UserError(f"data source {src.source!r} has no 'limit': --plan cannot count its rows")
        prompts += src.limit
        tokens += src.limit * src.mean_tokens
    return prompts, tokens, prompts if positions == "decision" else tokens


def _harvest(name: str, shape: dict, cfg: StudyConfig, sources: list[DataSource], layer: int,
             rates: GpuRates) -> StageEstimate:
    rt = cfg.runtime
    prompts, tokens, rows = _rows_tokens(sources, cfg.pair.positions)
    model_bytes = DTYPE_BYTES[rt.dtype]
    # The forward stops after layer L: L+1 blocks, for each of the two models.
    flops = tokens * harvest_flops_per_token(shape["params_per_layer"], layer)
    mean_len = tokens / max(prompts, 1)
    weights = 2 * shape["params"] * model_bytes
    batch_acts = rt.harvest_batch_size * mean_len * (4 * shape["d_model"] + 2 * shape["intermediate"]) * model_bytes
    disk = rows * 2 * shape["d_model"] * DTYPE_BYTES[rt.store_dtype]
    return StageEstimate(name, tokens, int(disk), int(weights + batch_acts), flops / (rates.harvest_tflops * 1e12),
                         f"{prompts} prompts, {rows} rows")


def _train(sweep: SweepConfig, shape: dict, cfg: StudyConfig, rates: GpuRates) -> StageEstimate:
    d, batch = shape["d_model"], sweep.train.batch_size
    seconds = 0.0
    memory = 0
    for c in sweep.crosscoder:
        flops = train_flops_per_step(batch, c.n_models, d, c.dict_size) * c.steps
        seconds += flops / (rates.train_rate(c.dict_size) * 1e12)
        # parameters, gradients and two Adam moments in fp32; every stack stays on the device.
        memory += 4 * 4 * 2 * c.n_models * d * c.dict_size
    _, _, rows = _rows_tokens(cfg.data.train, cfg.pair.positions)
    rows_bytes = rows * 2 * d * 4  # the trainer holds the activations in float32
    ckpt = sum(4 * 2 * c.n_models * d * c.dict_size for c in sweep.crosscoder) * (1 + sweep.train.keep_checkpoints * 3)
    return StageEstimate("train", 0, int(ckpt), int(memory + rows_bytes), seconds,
                         f"{len(sweep.crosscoder)} crosscoders; disk = checkpoints + resume states")


def condition_count(exp: ExperimentConfig, n_crosscoders: int) -> int:
    """An upper bound on the experiment's conditions (experiment.conditions' grid)."""
    per_unrelated = 1 + exp.n_unrelated
    steer = 2 * len([a for a in exp.alphas if a != 1]) * per_unrelated
    ablate = 3 * per_unrelated
    transfer = len(exp.doses) * per_unrelated
    per_cc = 4 + steer + ablate + transfer
    shared = 2 + 2 * len(CONTROL_DOSES) * exp.n_random + len(exp.doses) * N_DOM_RIVALS
    return n_crosscoders * per_cc + shared


def _experiment(sweep: SweepConfig, shape: dict, cfg: StudyConfig, exp: ExperimentConfig,
                rates: GpuRates) -> StageEstimate:
    test_prompts, test_tokens, _ = _rows_tokens(cfg.data.test, "decision")
    n_test = min(test_prompts, len(REQUEST_KINDS) * exp.n_per_kind)
    mean_len = test_tokens / max(test_prompts, 1)
    n_cond = condition_count(exp, len(sweep.crosscoder))
    tokens = int(n_cond * n_test * (mean_len + exp.max_new_tokens))
    # Greedy decoding: one step per new token for a whole batch, at the measured step rate
    # (launch-bound: about the same for any batch up to the one measured); prefill by FLOPs.
    batches = n_cond * math.ceil(n_test / exp.batch_size)
    prefill_flops = 2 * shape["params"] * n_cond * n_test * mean_len
    seconds = batches * exp.max_new_tokens / rates.decode_steps_per_s + prefill_flops / (rates.harvest_tflops * 1e12)
    model_bytes = DTYPE_BYTES[cfg.runtime.dtype]
    kv = 2 * shape["n_layers"] * shape["kv_dim"] * (mean_len + exp.max_new_tokens) * exp.batch_size * model_bytes
    ccs = sum(4 * 2 * c.n_models * shape["d_model"] * c.dict_size for c in sweep.crosscoder)
    weights = 2 * shape["params"] * model_bytes
    return StageEstimate("experiment", tokens, int(n_cond * 4096), int(weights + kv + ccs), seconds,
                         f"<= {n_cond} conditions x {n_test} prompts")


def plan_study(cfg: StudyConfig, sweep: SweepConfig) -> Plan:
    """Estimate every stage from the two model configs; also checks the pair and the layer."""
    cfg_a = load_config(cfg.path(cfg.pair.rl_config) if cfg.pair.rl_config else cfg.local_or_id(cfg.pair.rl))
    cfg_b = load_config(cfg.path(cfg.pair.base_config) if cfg.pair.base_config else cfg.local_or_id(cfg.pair.base))
    check_config_pair(cfg_a, cfg_b, cfg.pair.layer)
    shape = model_shape(cfg_a)
    exp = load_experiment_config({"seed": cfg.seed, "device": cfg.runtime.device, **cfg.experiment})
    rates = get_rates(cfg.runtime.gpu)
    plan = Plan(model=shape, rates=rates)
    plan.stages.append(_harvest("harvest (train)", shape, cfg, cfg.data.train, cfg.pair.layer, rates))
    plan.stages.append(_train(sweep, shape, cfg, rates))
    plan.stages.append(_harvest("harvest (calibration)", shape, cfg, cfg.data.calibration, cfg.pair.layer, rates))
    plan.stages.append(_experiment(sweep, shape, cfg, exp, rates))
    limit = cfg.runtime.gpu_memory_gb * 1e9
    for s in plan.stages:
        if s.memory_bytes > limit:
            plan.warnings.append(f"{s.stage}: needs ~{s.memory_bytes / 1e9:.0f} GB, more than runtime.gpu_memory_gb="
                                 f"{cfg.runtime.gpu_memory_gb:g}; split the sweep or lower the batch size")
    return plan
