"""Is a twin a null? How far RL moved a model, and whether it moved the model's tool use.

A pipeline that finds "tool features" in every pair it is given proves nothing. Its null is a
pair where RL moved the model without teaching tool use: the organism's sham twin
(`tooldiff organism --variant sham`: the same GRPO run from the same base, prompts, steps and KL
settings, with a reward that is noise and a loss that credits no decision token; organism/reward.py).
For it to be a fair null (issue 23), it must
- leave tool behaviour alone: call rate per request kind within ±5 pp of the base's on the test
  split (TOOL_SHIFT_CAP), and
- move the model about as much as the real RL does: mean KL(twin ‖ base) per prompt token on the
  rl split, and ‖ΔW‖, within 2x of the real twin's (MOVE_RATIO_CAP).

`null_check(real, sham)` measures both on built organisms (their eval outputs and models) and
says which criteria hold; `tooldiff null-check` prints and saves it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from tooldiff.evaluation import paired_test, score_outputs
from tooldiff.hf import render_prompt
from tooldiff.interventions.loss import kl_per_position, logits_of, right_padded
from tooldiff.organism import load_organism
from tooldiff.progress import progress_bar
from tooldiff.prompts import REQUEST_KINDS

TOOL_SHIFT_CAP = 0.05
MOVE_RATIO_CAP = 2.0


@dataclass(frozen=True)
class Drift:
    """How far a twin is from its base."""

    weight_norm: float  # ‖W_twin − W_base‖ over every parameter (Frobenius)
    weight_rel: float  # the same divided by ‖W_base‖
    kl_all: float  # mean KL(twin ‖ base) per prompt token, nats
    kl_decision: float  # at the last prompt token (where the model decides to call)
    n_prompts: int


@dataclass(frozen=True)
class CallShift:
    """Call rate of one request kind on the test split, twin minus base (paired by prompt)."""

    kind: str
    n: int
    base: float
    twin: float
    diff: float
    ci95: tuple[float, float]


@dataclass(frozen=True)
class TwinReport:
    path: str
    variant: str
    drift: Drift
    shifts: list[CallShift]


def weight_drift(base, twin) -> tuple[float, float]:
    """(‖ΔW‖, ‖ΔW‖ / ‖W_base‖) over the parameters both models share."""
    base_sd, twin_sd = base.state_dict(), twin.state_dict()
    delta = sum(float((twin_sd[k].float() - v.float()).pow(2).sum()) for k, v in base_sd.items())
    size = sum(float(v.float().pow(2).sum()) for v in base_sd.values())
    return delta ** 0.5, (delta / size) ** 0.5


@torch.no_grad()
def kl_drift(base, twin, tokenizer, texts: list[str], batch_size: int = 32) -> tuple[float, float]:
    """Mean KL(twin ‖ base) per real token and at each text's last token."""
    device = next(twin.parameters()).device
    total_all = total_last = 0.0
    n_all = 0
    with progress_bar("KL to the base", total=len(texts)) as advance:
        for start in range(0, len(texts), batch_size):
            ids_BT, mask_BT = right_padded(tokenizer, texts[start:start + batch_size], 512, device)
            kl_BT = kl_per_position(logits_of(twin, ids_BT, mask_BT), logits_of(base, ids_BT, mask_BT))
            last_B = mask_BT.sum(1) - 1
            total_all += float(kl_BT[mask_BT.bool()].sum())
            total_last += float(kl_BT.gather(1, last_B.unsqueeze(1)).sum())
            n_all += int(mask_BT.sum())
            advance(len(ids_BT))
    return total_all / n_all, total_last / len(texts)


def call_shifts(organism_dir: Path, seed: int) -> list[CallShift]:
    """Per kind, the twin's call rate minus the base's on the test split (the build's outputs)."""
    from tooldiff.organism.store import read_jsonl

    org = load_organism(organism_dir, models=False)
    test = org.records("test")
    made = {}
    for name in ("base", "rl"):
        outputs = [r["output"] for r in read_jsonl(org.root / "eval" / f"{name}_test_outputs.jsonl")]
        rows = score_outputs(test, outputs, fmt="hermes", strict=True, seed=seed).rows
        made[name] = [float(r["made_call"]) for r in rows]
    shifts = []
    for kind in REQUEST_KINDS:
        idx = [i for i, r in enumerate(test) if r["kind"] == kind]
        twin, base = [made["rl"][i] for i in idx], [made["base"][i] for i in idx]
        test_ = paired_test(twin, base, seed=seed)
        shifts.append(CallShift(kind, len(idx), sum(base) / len(idx), sum(twin) / len(idx), test_["diff"],
                                tuple(test_["ci95"])))
    return shifts


def twin_report(organism_dir: Path, n_prompts: int, seed: int) -> TwinReport:
    """Drift and call shifts of the twin in `organism_dir` against its own base."""
    org = load_organism(organism_dir)
    texts = [render_prompt(org.tokenizer, r) for r in org.records("rl")[:n_prompts]]
    norm, rel = weight_drift(org.base, org.rl)
    kl_all, kl_last = kl_drift(org.base, org.rl, org.tokenizer, texts)
    return TwinReport(str(organism_dir), org.info.get("variant", "?"), Drift(norm, rel, kl_all, kl_last, len(texts)),
                      call_shifts(organism_dir, seed))


def null_check(real_dir: Path, sham_dir: Path, n_prompts: int = 400, seed: int = 0) -> dict:
    """Both twins' reports and the two criteria of the module docstring, as a JSON-ready dict."""
    real, sham = twin_report(real_dir, n_prompts, seed), twin_report(sham_dir, n_prompts, seed)
    ratios = {"kl_all": sham.drift.kl_all / real.drift.kl_all,
              "kl_decision": sham.drift.kl_decision / real.drift.kl_decision,
              "weight_norm": sham.drift.weight_norm / real.drift.weight_norm}
    untouched = {s.kind: abs(s.diff) <= TOOL_SHIFT_CAP for s in sham.shifts}
    moves = {k: 1 / MOVE_RATIO_CAP <= v <= MOVE_RATIO_CAP for k, v in ratios.items()}
    return {"format": 1, "seed": seed, "real": asdict(real), "sham": asdict(sham), "sham_over_real": ratios,
            "criteria": {"tool_shift_cap": TOOL_SHIFT_CAP, "move_ratio_cap": MOVE_RATIO_CAP,
                         "tool_use_untouched": untouched, "moves_like_rl": moves},
            "fair_null": all(untouched.values()) and moves["kl_all"] and moves["weight_norm"]}
