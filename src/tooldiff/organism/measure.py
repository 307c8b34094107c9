"""What the build measures: test-split metrics of a model, and the layer to study.

Metrics are the project's M (tooldiff.evaluation.score_outputs) plus, per request kind, the
share of prompts that got a call (for no-call kinds, that is the kind's FPR) and strict accuracy,
each with a bootstrap CI.

The recommended layer is where the difference-of-means direction (should-call minus no-call
prompts, at the decision position, in the RL model) separates held-out calibration prompts best
(AUROC, direction fitted on one half and scored on the other), as SPEC section 5 advises.
"""

from __future__ import annotations

import torch

from tooldiff.evaluation import bootstrap_ci, score_outputs
from tooldiff.evaluation.stats import auroc
from tooldiff.hf import capture_layers, decoder_layers, render_prompt
from tooldiff.organism.chat import CALL_OPEN, EOS_TURN, call_text
from tooldiff.organism.generate import generate_for_records, generate_greedy
from tooldiff.prompts import NO_CALL_KINDS


def max_new_tokens_for(records: list[dict], tokenizer) -> int:
    """Room for the longest right answer: the longest call block, its end-of-turn, a margin."""
    calls = [call_text(r["needs"]) + EOS_TURN for r in records if r.get("needs")]
    longest = max((len(tokenizer(c, add_special_tokens=False)["input_ids"]) for c in calls), default=16)
    return longest + 4


def _share_with_ci(flags: list[bool], seed: int) -> dict:
    mean, lo, hi = bootstrap_ci([float(f) for f in flags], seed=seed)
    return {"n": len(flags), "mean": mean, "ci95": [lo, hi]}


def metrics_by_kind(rows: list[dict], seed: int) -> dict:
    """Per kind: call rate (the FPR for no-call kinds) and strict accuracy, with CIs."""
    out = {}
    for kind in sorted({r["kind"] for r in rows}):
        kind_rows = [r for r in rows if r["kind"] == kind]
        out[kind] = {"call_rate": _share_with_ci([r["made_call"] for r in kind_rows], seed),
                     "strict": _share_with_ci([r["valid"] for r in kind_rows], seed)}
    return out


def evaluate(model, tokenizer, records: list[dict], seed: int, batch_size: int, label: str) -> tuple[dict, list[str]]:
    """Greedy outputs on `records` and their metrics (M + by-kind + FPR per no-call kind)."""
    outputs = generate_for_records(model, tokenizer, records, max_new_tokens_for(records, tokenizer),
                                   batch_size, label)
    report = score_outputs(records, outputs, fmt="hermes", strict=True, seed=seed)
    metrics = dict(report.metrics)
    by_kind = metrics_by_kind(report.rows, seed)
    metrics["by_kind"] = by_kind
    metrics["fpr_by_kind"] = {k: by_kind[k]["call_rate"]["mean"] for k in NO_CALL_KINDS if k in by_kind}
    metrics["error_counts"] = report.error_counts
    return metrics, outputs


FORCED_CALLS_FLOOR = 0.5  # below this the base cannot copy arguments, and RL will not teach it to


def forced_call_accuracy(model, tokenizer, records: list[dict], seed: int, batch_size: int) -> dict:
    """Strict accuracy of the calls a model writes when made to start one (the prompt, then
    `<tool_call>` and a newline), on the tool-needed prompts: what the base can do, whether or not
    it chooses to call. RL only decides *when* to call; copying the arguments must come from
    pretraining, and a base that missed that transition (seed 1 of the default preset: 9.5 %)
    gives an RL twin that calls and is wrong; the build therefore drills on until it copies."""
    calls = [r for r in records if r.get("gold")]
    prefix = f"{CALL_OPEN}\n"
    prompts = [render_prompt(tokenizer, r) + prefix for r in calls]
    outputs = generate_greedy(model, tokenizer, prompts, max_new_tokens_for(calls, tokenizer), batch_size,
                              "forced calls")
    report = score_outputs(calls, [prefix + o for o in outputs], fmt="hermes", strict=True, seed=seed)
    valid = [row["valid"] for row in report.rows]
    by_tool: dict[str, list[bool]] = {}
    for record, ok in zip(calls, valid):
        by_tool.setdefault(record["needs"]["name"], []).append(ok)
    return _share_with_ci(valid, seed) | {"by_tool": {name: sum(v) / len(v) for name, v in sorted(by_tool.items())}}


def _prompt_batches(tokenizer, records: list[dict], batch_size: int):
    """Tokenized prompt batches, left-padded: the last position is then every row's decision token."""
    tokenizer.padding_side = "left"
    for start in range(0, len(records), batch_size):
        texts = [render_prompt(tokenizer, r) for r in records[start:start + batch_size]]
        yield tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)


@torch.no_grad()
def offered_check_auroc(model, tokenizer, records: list[dict], batch_size: int) -> float:
    """Does the model know whether the needed tool is on offer? AUROC of P(`<tool_call>`) at the
    decision position, call prompts against not-offered ones: both need a tool, so only the tool
    list tells them apart (0.5: the model does not look it up)."""
    needed = [r for r in records if r["kind"] in ("call", "not_offered")]
    call_id = tokenizer.convert_tokens_to_ids(CALL_OPEN)
    logp_N = torch.cat([model(**batch).logits[:, -1].log_softmax(-1)[:, call_id]
                        for batch in _prompt_batches(tokenizer, needed, batch_size)])
    offered_N = torch.tensor([r["kind"] == "call" for r in needed])
    return float(auroc(logp_N[:, None], offered_N)[0])


@torch.no_grad()
def decision_activations(model, tokenizer, records: list[dict], batch_size: int = 64) -> torch.Tensor:
    """Residual stream after every decoder layer at each prompt's last token: [layers, N, D]."""
    layers = range(len(decoder_layers(model)))
    per_batch = []
    with capture_layers(model, layers) as box:
        for batch in _prompt_batches(tokenizer, records, batch_size):
            model(**batch)
            per_batch.append(torch.stack([box[i][:, -1] for i in layers]))  # [layers, B, D]
    return torch.cat(per_batch, dim=1)


def dom_auroc_by_layer(acts_LND: torch.Tensor, needs_call_N: torch.Tensor) -> list[float]:
    """Held-out AUROC of the difference-of-means direction at each layer (fit on even rows)."""
    fit_N = torch.arange(acts_LND.shape[1]) % 2 == 0
    result = []
    for acts_ND in acts_LND:
        pos, neg = needs_call_N & fit_N, ~needs_call_N & fit_N
        direction_D = acts_ND[pos].mean(0) - acts_ND[neg].mean(0)
        score_N = acts_ND @ direction_D
        held_out = ~fit_N
        result.append(float(auroc(score_N[held_out, None], needs_call_N[held_out])[0]))
    return result


def recommend_layer(rl_auroc: list[float]) -> int:
    """The layer with the best RL AUROC; near-ties (within 0.005) go to the layer nearest the middle."""
    best = max(rl_auroc)
    middle = (len(rl_auroc) - 1) / 2
    candidates = [i for i, a in enumerate(rl_auroc) if a >= best - 0.005]
    return min(candidates, key=lambda i: (abs(i - middle), i))


def layer_scan(base, rl, tokenizer, records: list[dict], batch_size: int) -> dict:
    """Difference-of-means AUROC per layer for both models, on calibration prompts."""
    needs_call_N = torch.tensor([bool(r["gold"]) for r in records])
    base_auroc = dom_auroc_by_layer(decision_activations(base, tokenizer, records, batch_size), needs_call_N)
    rl_auroc = dom_auroc_by_layer(decision_activations(rl, tokenizer, records, batch_size), needs_call_N)
    return {"rl_dom_auroc": rl_auroc, "base_dom_auroc": base_auroc, "recommended": recommend_layer(rl_auroc),
            "n": len(records)}
