"""The rates `--plan` divides a study's work by: measured, not assumed.

`benchmarks/gpu_paper_scale.py` measured tooldiff's own harvest, crosscoder step and generation
loop at the paper's shapes on a GPU; `rates_from_results` turns that run's JSON into the few
numbers the plan needs, in the plan's own units (its FLOP counts per stage, and decoding steps
per second, since greedy decoding of a 3B model in eager PyTorch is bound by kernel launches,
not FLOPs). The measured figures are kept here so that an installed package can plan without
the checkout; tests/test_study_plan.py checks them against the committed results file.
"""

from __future__ import annotations

from dataclasses import dataclass

from tooldiff.errors import UserError


@dataclass(frozen=True)
class GpuRates:
    gpu: str
    source: str  # benchmarks/results/gpu-paper-scale/<run>.json, with its date and commit
    harvest_tflops: float  # tooldiff's decision-position harvest, in the plan's FLOP count
    train_tflops: dict[int, float]  # crosscoder step by dictionary size D, in the plan's FLOP count
    decode_steps_per_s: float  # greedy decoding steps per second, batch `decode_batch`
    decode_batch: int
    memory_gb: float

    def train_rate(self, dict_size: int) -> float:
        """The rate measured at the nearest dictionary size (on a log scale)."""
        import math

        nearest = min(self.train_tflops, key=lambda D: abs(math.log(D / dict_size)))
        return self.train_tflops[nearest]


def harvest_flops_per_token(params_per_layer: int, layer: int) -> float:
    """Both models through decoder layer `layer` (embeddings are a lookup): the plan's count."""
    return 2 * 2 * params_per_layer * (layer + 1)


def train_flops_per_step(batch: int, n_models: int, d: int, dict_size: int) -> float:
    """Encoder and decoder over every model, forward and backward (x3): the plan's count."""
    return 12 * batch * n_models * d * dict_size


def rates_from_results(harvest: dict, crosscoder: dict, steering: dict, params_per_layer: int, gpu: str,
                       source: str, memory_gb: float) -> GpuRates:
    """The plan's rates from a gpu_paper_scale.py run's sections (harvest and crosscoder of one
    run, steering of a run that measured it)."""
    harvest_tflops = (harvest["harvest_decision"]["tokens_per_s"]
                      * harvest_flops_per_token(params_per_layer, harvest["layer"]) / 1e12)
    train = {}
    for row in crosscoder["shapes"]:
        step_s = row["ours"][row["default"]]["ms_per_step"] / 1e3
        flops = train_flops_per_step(crosscoder["batch"], 2, crosscoder["d_per_model"], row["D"])
        train[row["D"]] = flops / step_s / 1e12
    plain = steering["conditions"]["plain"]["tokens_per_s"]
    return GpuRates(gpu=gpu, source=source, harvest_tflops=round(harvest_tflops, 1),
                    train_tflops={D: round(r, 1) for D, r in sorted(train.items())},
                    decode_steps_per_s=round(plain / steering["prompts"], 2), decode_batch=steering["prompts"],
                    memory_gb=memory_gb)


# One H200 (Firecracker VM, 16 vCPUs), torch 2.11, transformers 5.17, 2026-12-04: the harvest and
# crosscoder sections of the 16:57 run (commit c38e637), the steering section of the 16:49 run.
H200 = GpuRates(gpu="NVIDIA H200", source="benchmarks/results/gpu-paper-scale/20261204-1657-h200-c38e637.json",
                harvest_tflops=343.9, train_tflops={8192: 165.3, 16384: 184.8}, decode_steps_per_s=30.71,
                decode_batch=64, memory_gb=139.0)
RATES = {"h200": H200}


def get_rates(name: str) -> GpuRates:
    if name not in RATES:
        raise UserError(f"no measured rates for GPU {name!r}; known: {', '.join(sorted(RATES))} "
                        "(measure yours with benchmarks/gpu_paper_scale.py)")
    return RATES[name]
