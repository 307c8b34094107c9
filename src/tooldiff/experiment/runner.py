"""Run conditions on the TEST prompts, score them, and append one JSON line per condition.

The JSONL is the experiment's checkpoint: each line is flushed and fsynced when its condition
finishes, a torn last line (a crash mid-write) is ignored, and a rerun skips every key it finds.

Generation is planned per (condition, prompt) row, never per condition:
- a row whose edit is exactly the identity (latents that are silent at the last prompt token,
  see silent.py) is the `none` row of its model, and is not generated again;
- rows with identical edits (same model, crosscoder and interventions) are generated once;
- the remaining rows of all conditions that share a model and crosscoder are packed into
  batches of `batch_size` with per-row interventions, ordered by the length of the model's
  `none` completion on that prompt and by prompt length, so that rows ending early share a
  batch (a batch runs until its longest row ends) and prompts of one width share a prefill;
- prompts are rendered and tokenized once, not once per condition.
Scores are computed per condition from all its rows, generated or copied, as before.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tooldiff.activations.harvest import last_token_outputs
from tooldiff.evaluation import score_outputs
from tooldiff.experiment.conditions import MODEL_INDEX, Condition
from tooldiff.experiment.config import ExperimentConfig
from tooldiff.experiment.silent import silent_rows, skippable
from tooldiff.hf import render_prompt
from tooldiff.interventions.generate import generate_completions
from tooldiff.progress import new_progress, say

LENGTH_STEP = 8  # tokens: completions within one step count as equally long when batching
ROWS_PER_WAVE = 4096  # rows generated between two checkpoints (~16 batches): big enough to sort by length


def read_results(path: Path) -> dict[str, dict]:
    """Finished conditions by key; a torn final line from a crash is skipped."""
    done: dict[str, dict] = {}
    if not path.is_file():
        return done
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        done[entry["key"]] = entry
    return done


def _drop_torn_tail(path: Path) -> None:
    """Cut a partial last line left by a crash, so the next append starts on a line of its own."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[:data.rfind(b"\n") + 1])


def _append(path: Path, entry: dict) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(entry) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _score(cond: Condition, records: list[dict], outputs: list[str], cfg: ExperimentConfig) -> dict:
    report = score_outputs(records, outputs, fmt=cfg.parse_format, strict=True, seed=cfg.seed, n_boot=cfg.n_boot)
    return {"key": cond.key, **cond.describe(), "metrics": report.metrics,
            "valid": [int(r["valid"]) for r in report.rows],
            "made_call": [int(r["made_call"]) for r in report.rows],
            "examples": [{"id": r["id"], "output": o} for r, o in list(zip(records, outputs))[:3]]}


Signature = tuple  # (model, crosscoder or None, specs): what decides a row's output


def signature(cond: Condition) -> Signature:
    """Rows of conditions with equal signatures are generated once. Vector-only edits need no
    crosscoder, so they do not depend on which crosscoder the condition belongs to."""
    needs_cc = any(s.vector is None for s in cond.specs)
    return (cond.model, cond.crosscoder if needs_cc else None, cond.specs)


def reference(model: str) -> Signature:
    return (model, None, ())


@dataclass
class RowPlan:
    """Every condition's rows point at a signature's row; `pending` is what must be generated."""

    sources: dict[str, list[Signature]] = field(default_factory=dict)  # condition key -> per-row signature
    pending: dict[Signature, dict[int, None]] = field(default_factory=dict)  # signature -> rows to generate


class Generator:
    """Generates (signature, row) units in packed, length-ordered batches and keeps the outputs."""

    def __init__(self, models: dict, tokenizer, records: list[dict], crosscoders: dict, cfg: ExperimentConfig):
        self.models, self.tokenizer, self.crosscoders, self.cfg = models, tokenizer, crosscoders, cfg
        self.texts = [render_prompt(tokenizer, r) for r in records]  # once, not once per condition
        self.token_ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in self.texts]
        self.outputs: dict[tuple[Signature, int], str] = {}
        self.expected_len: dict[tuple[str, int], int] = {}  # (model, row) -> tokens of its `none` output
        self.hidden: dict[tuple[str, int], torch.Tensor] = {}  # (model, layer) -> h_ND at the last prompt token
        self.n_generated = 0

    def last_hidden(self, model: str, layer: int) -> torch.Tensor:
        if (model, layer) not in self.hidden:
            pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
            self.hidden[model, layer] = last_token_outputs(self.models[model], layer, self.token_ids, pad)
        return self.hidden[model, layer]

    def run(self, pending: dict[Signature, dict[int, None]], advance) -> None:
        """Generate every pending unit; units of one (model, crosscoder) share batches."""
        groups: dict[tuple, list[tuple[Signature, int]]] = {}
        for sig, rows in pending.items():
            groups.setdefault(sig[:2], []).extend((sig, r) for r in rows if (sig, r) not in self.outputs)
        for (model, cc_name), units in groups.items():
            units.sort(key=lambda u: self._length_key(model, u[1]))
            for start in range(0, len(units), self.cfg.batch_size):
                self._batch(model, cc_name, units[start:start + self.cfg.batch_size])
                advance(len(units[start:start + self.cfg.batch_size]))

    def _length_key(self, model: str, row: int) -> tuple[int, int]:
        """Long rows first, by expected completion length in coarse steps, then by prompt length:
        a batch pays for its longest completion and its widest prompt (padding)."""
        return -(self.expected_len.get((model, row), 0) // LENGTH_STEP), -len(self.token_ids[row])

    def _batch(self, model: str, cc_name: str | None, units: list[tuple[Signature, int]]) -> None:
        per_row = [list(sig[2]) for sig, _ in units]
        completions = generate_completions(
            self.models[model], self.tokenizer, [self.texts[r] for _, r in units],
            interventions=per_row if any(per_row) else None, crosscoder=self.crosscoders.get(cc_name),
            model_index=MODEL_INDEX[model], max_new_tokens=self.cfg.max_new_tokens, batch_size=len(units),
            progress=False)
        for (sig, r), c in zip(units, completions):
            self.outputs[sig, r] = c.text
            if sig == reference(model):
                self.expected_len[model, r] = len(c.token_ids)
        self.n_generated += len(units)


def plan_rows(todo: list[Condition], gen: Generator) -> RowPlan:
    """Which signature's output each row of each condition takes, and what is left to generate."""
    plan, n = RowPlan(), len(gen.texts)
    for model in dict.fromkeys(c.model for c in todo):
        # `none` of every model in play: copied rows read it, and its lengths order the batches.
        plan.pending[reference(model)] = dict.fromkeys(range(n))
    for cond in todo:
        sig, ref = signature(cond), reference(cond.model)
        if skippable(cond):
            h_ND = gen.last_hidden(cond.model, cond.specs[0].layer)
            silent = silent_rows(cond, h_ND, gen.crosscoders[cond.crosscoder], MODEL_INDEX[cond.model])
        else:
            silent = [False] * n
        plan.sources[cond.key] = [ref if s else sig for s in silent]
        for r, source in enumerate(plan.sources[cond.key]):
            plan.pending.setdefault(source, {})[r] = None
    return plan


def _waves(todo: list[Condition], plan: RowPlan) -> list[list[Condition]]:
    """Conditions in checkpoint waves of about ROWS_PER_WAVE new rows, one (model, crosscoder) at a
    time so that a wave fills whole batches."""
    by_group: dict[tuple, list[Condition]] = {}
    for cond in todo:
        by_group.setdefault(signature(cond)[:2], []).append(cond)
    waves, seen = [], set()
    for conds in by_group.values():
        wave, rows = [], 0
        for cond in conds:
            new = {(src, r) for r, src in enumerate(plan.sources[cond.key]) if src != reference(cond.model)} - seen
            seen |= new
            wave.append(cond)
            rows += len(new)
            if rows >= ROWS_PER_WAVE:
                waves.append(wave)
                wave, rows = [], 0
        if wave:
            waves.append(wave)
    return waves


def run_conditions(conditions: list[Condition], models: dict, tokenizer, records: list[dict],
                   crosscoders: dict, results_path: Path, cfg: ExperimentConfig) -> dict[str, dict]:
    """Run every condition not yet in `results_path`; return all results by key."""
    _drop_torn_tail(results_path)
    done = read_results(results_path)
    todo = [c for c in dict.fromkeys(conditions) if c.key not in done]
    if not todo:
        return _asked(done, conditions)
    gen = Generator(models, tokenizer, records, crosscoders, cfg)
    plan = plan_rows(todo, gen)
    total = sum(len(rows) for rows in plan.pending.values())
    with new_progress() as bar:
        task = bar.add_task("experiment", total=total)
        advance = lambda n: bar.advance(task, n)  # noqa: E731
        gen.run({s: rows for s, rows in plan.pending.items() if s == reference(s[0])}, advance)
        for wave in _waves(todo, plan):
            gen.run({s: plan.pending[s] for s in dict.fromkeys(s for c in wave for s in plan.sources[c.key])}, advance)
            for cond in wave:
                outputs = [gen.outputs[src, r] for r, src in enumerate(plan.sources[cond.key])]
                entry = _score(cond, records, outputs, cfg)
                _append(results_path, entry)
                done[cond.key] = entry
    say(f"experiment: {len(todo)} conditions x {len(records)} prompts; {gen.n_generated} rows generated, "
        "every other row is identical to one of them")
    return _asked(done, conditions)


def _asked(done: dict[str, dict], conditions: list[Condition]) -> dict[str, dict]:
    """The results of `conditions` alone: a file written by a wider grid holds more."""
    return {c.key: done[c.key] for c in dict.fromkeys(conditions)}
