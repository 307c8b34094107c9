"""What each reconstruction splice costs the model's next-token loss, beside its tool effect.

A splice that moves tool correctness may do so only because it damages the model. So every
splice condition of the experiment (each crosscoder, in the base and in the RL model) is also
measured the standard way (interventions/loss.py): CE and KL of next-token prediction with the
reconstruction spliced in, against the clean model and against zero-ablating the layer,

    CE recovered = (CE_zero - CE_splice) / (CE_zero - CE_clean),

on two sets of calibration texts: generic text (where the pair has some) and the rendered tool
prompts. Two placements: at every token (`all`, the usual dictionary-quality figure, with CE)
and where the experiment splices (`last_prompt`, the decision position: KL only, since the
prompt has no next token there). Calibration texts: this is a property of the crosscoder, not an
effect on the test prompts, and the test split stays the experiment's.
"""

from __future__ import annotations

import random
from typing import Any

from tooldiff.experiment.conditions import MODEL_INDEX
from tooldiff.experiment.summary import SpliceLoss
from tooldiff.hf import render_prompt
from tooldiff.interventions import parse_intervention
from tooldiff.interventions.loss import POSITIONS, loss_recovered
from tooldiff.progress import progress_bar

GENERIC, TOOL_PROMPTS = "generic", "tool_prompts"  # the text sets (SpliceLoss.texts)


def loss_texts(records: list[dict], tokenizer: Any, n: int, seed: int) -> dict[str, list[str]]:
    """Up to `n` texts per set, sampled with `seed`: generic text rows and rendered tool prompts.
    A set the records do not hold is left out."""
    sets = {GENERIC: [r["text"] for r in records if "messages" not in r and isinstance(r.get("text"), str)],
            TOOL_PROMPTS: [render_prompt(tokenizer, r) for r in records if "messages" in r]}
    rng = random.Random(seed)
    return {name: rng.sample(texts, min(n, len(texts))) for name, texts in sets.items() if texts}


def placements(experiment_positions: str) -> tuple[str, ...]:
    """Every token, and the experiment's own placement where the loss measure supports it."""
    extra = (experiment_positions,) if experiment_positions in POSITIONS and experiment_positions != "all" else ()
    return ("all", *extra)


def splice_losses(ccs: dict, models: dict, tokenizer: Any, texts: dict[str, list[str]], layer: int,
                  experiment_positions: str) -> list[SpliceLoss]:
    """The loss recovered of every (crosscoder, model, text set, placement), matched normalization
    (the experiment's `reconstruct`)."""
    jobs = [(name, model, kind, pos) for name in ccs for model in ("base", "rl") for kind in texts
            for pos in placements(experiment_positions)]
    rows = []
    with progress_bar("loss recovered of each splice", total=len(jobs)) as advance:
        for name, model, kind, pos in jobs:
            splice = [parse_intervention({"op": "reconstruct", "layer": layer, "positions": pos})]
            r = loss_recovered(models[model], tokenizer, texts[kind], splice, ccs[name], MODEL_INDEX[model],
                               positions=pos, progress=False)
            d = r.to_dict()
            rows.append(SpliceLoss(crosscoder=name, model=model, texts=kind, **{
                k: d[k] for k in SpliceLoss.model_fields if k in d}))
            advance(1)
    return rows
