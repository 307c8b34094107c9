"""Emergence along RL: when does the final twin's tool latent appear on the way through RL?

The experiment studies one pair, the base and the twin RL kept. The organism's RL stage also saves
the twin at every scored step (`rl/checkpoints/step-NNNN.safetensors`, organism/checkpoints.py),
so the path from base to twin can be read with the final twin's instrument: its crosscoder and
the top tool latent of the experiment's ranking (`features/<crosscoder>.json`). Per checkpoint,
with step 0 the base itself:

- behaviour: strict accuracy on calibration call prompts and the call rate on each no-call kind
  (greedy, `organism.measure.evaluate`), beside the selection scores RL recorded at that step;
- the latent: its AUROC, call vs no-call prompts, at the decision position (last prompt token),
  and its mean activation per request kind, encoding (checkpoint, base) pairs: the checkpoint in
  the RL slot (A), the base in the base slot (B), as the crosscoder was trained (features/rank.py);
- the shift: mean over calibration tool prompts of h_checkpoint − h_base at the crosscoder's
  layer (`features.model_shift`), its cosine with the latent's RL-side decoder direction d (raw
  space) and the share of its squared norm along d, (shift·d̂)²/‖shift‖² = cos².

If the latent is RL's tool feature, its AUROC and share should rise with the strict rate; a latent
that only exists at the kept step would show a jump there. Calibration prompts only: the test
split stays unseen. `tooldiff emergence` writes emergence.json, emergence.png and emergence.md.

With `train_at`, crosscoders of their own are also trained at a few checkpoints, to see when an
RL-exclusive tool latent first passes the selection (emergence_retrain.py).
"""

from __future__ import annotations

import json
import random
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch

from tooldiff.errors import UserError
from tooldiff.experiment.emergence_retrain import Retrained, first_passing, pick_steps, train_at
from tooldiff.features.ranking import MIN_AUROC, selection_rule
from tooldiff.prompts import NO_CALL_KINDS, REQUEST_KINDS

FORMAT = "tooldiff-emergence/1"
DEFAULT_CAPS = (60, 30, 30)  # calibration prompts per kind (call, not_offered, chitchat)
A, B = 0, 1  # crosscoder slots: A = the RL side (here the checkpoint), B = the base
JSON_FILE, PLOT_FILE, TABLE_FILE, SAMPLE_FILE = "emergence.json", "emergence.png", "emergence.md", "calibration.jsonl"


@dataclass(frozen=True)
class EmergenceConfig:
    """Which crosscoder (None: the first ranked one with RL-exclusive latents), how many prompts."""

    crosscoder: Optional[str] = None
    caps: tuple[int, int, int] = DEFAULT_CAPS
    seed: int = 0
    batch_size: int = 64
    device: str = "cpu"
    train_at: str = ""  # steps to train a crosscoder at: "auto" (first, middle, last, kept), "5,20,40", "" (none)
    min_auroc: float = MIN_AUROC  # the tool-feature selection bar (features/ranking.py)


@dataclass(frozen=True)
class Rates:
    """Tool behaviour of one model: strict on call prompts, call rate on each no-call kind."""

    strict: float
    wrong_calls: dict[str, float]
    strict_ci95: Optional[tuple[float, float]] = None


@dataclass(frozen=True)
class LatentReadout:
    """The top latent on (checkpoint, base) pairs at the decision position."""

    auroc: float  # call vs no-call prompts
    mean_by_kind: dict[str, float]
    firing_by_kind: dict[str, float]


@dataclass(frozen=True)
class ShiftShare:
    """The mean RL shift on tool prompts against the latent's RL-side decoder direction."""

    norm: float  # ‖shift‖
    projection: float  # shift·d̂
    cos: Optional[float]  # None where there is no shift (the base)
    share: Optional[float]  # (shift·d̂)² / ‖shift‖²


@dataclass(frozen=True)
class StepRow:
    step: int  # 0 = the base
    kept: bool  # the checkpoint the organism kept as its twin (rl/)
    calibration: Rates
    selection: Optional[Rates]  # recorded by RL (organism.json); None for the base
    latent: LatentReadout
    shift: ShiftShare


@dataclass(frozen=True)
class Emergence:
    format: str
    organism: str
    experiment: str
    crosscoder: str
    latent: int
    group: str
    layer: int
    kept_step: Optional[int]
    n: dict[str, int]  # calibration prompts per kind
    rows: list[StepRow]
    retrained: list[Retrained]  # crosscoders trained at single checkpoints (empty unless asked)
    selection: Optional[str]  # the rule a retrained latent passes by
    first_passing_step: Optional[int]  # the first retrained step whose RL-exclusive latent passes

    def to_dict(self) -> dict:
        return asdict(self)


# --- inputs ---------------------------------------------------------------------------------
def saved_steps(organism_dir: Path) -> list[int]:
    """The RL steps with a saved checkpoint; none is one UserError line."""
    from tooldiff.organism.checkpoints import CHECKPOINTS_DIR

    folder = Path(organism_dir) / "rl" / CHECKPOINTS_DIR
    steps = sorted(int(p.stem.removeprefix("step-")) for p in folder.glob("step-*.safetensors"))
    if not steps:
        raise UserError(f"{folder} holds no RL checkpoints: emergence needs an organism built with them "
                        "(`tooldiff organism --out DIR`; a shipped pair leaves them out)")
    return steps


def selection_scores(info: dict) -> tuple[dict[int, Rates], Optional[int]]:
    """Per step, the selection rates RL recorded (organism.json), and the step it kept."""
    record = (info.get("rl_training") or {}).get("checkpoints") or {}
    scores = {int(s["step"]): Rates(strict=float(s["call_strict"]), wrong_calls=dict(s["wrong_calls"]))
              for s in record.get("scores", [])}
    return scores, record.get("chosen_step")


def calibration_sample(records: list[dict], caps: tuple[int, int, int], seed: int) -> list[dict]:
    """Up to caps[i] calibration prompts of kind REQUEST_KINDS[i], in a seeded order."""
    rng, out = random.Random(seed), []
    for kind, cap in zip(REQUEST_KINDS, caps):
        pool = [r for r in records if r.get("kind") == kind]
        if not pool or cap < 2:
            raise UserError(f"need at least two calibration {kind!r} prompts (have {len(pool)}, cap {cap})")
        out += rng.sample(pool, min(cap, len(pool)))
    return out


def pick_crosscoder(summary: dict, requested: Optional[str]) -> str:
    """The named crosscoder, else the first ranked one with RL-exclusive latents, else the first."""
    names = sorted(summary.get("rankings") or {})
    if not names:
        raise UserError("the experiment ranks no crosscoder")
    if requested is not None:
        if requested not in names:
            raise UserError(f"the experiment ranks no crosscoder {requested!r}; choose one of {', '.join(names)}")
        return requested
    with_excl = [n for n in names if any(r["group"] == "a_excl" for r in summary["rankings"][n]["latents"])]
    return (with_excl or names)[0]


@dataclass
class Instrument:
    """The final twin's crosscoder and its top tool latent."""

    name: str
    crosscoder: object
    latent: int
    group: str
    layer: int
    directory: Path
    contrast: str
    pool: str


def load_instrument(org, experiment: Path, crosscoders: Optional[Path], requested: Optional[str]) -> Instrument:
    """Crosscoder and top latent as the experiment chose them (its contrast and pool)."""
    from tooldiff.artifacts import read_json
    from tooldiff.experiment.candidates import top_latents
    from tooldiff.experiment.run import existing_checkpoint, load_crosscoders
    from tooldiff.experiment.summary import SUMMARY_FILE
    from tooldiff.features.ranking import RUN_CROSSCODERS, ranking_file, read_ranking

    experiment = Path(experiment)
    summary = read_json(experiment / SUMMARY_FILE, "experiment summary")
    name = pick_crosscoder(summary, requested)
    directory = existing_checkpoint(Path(crosscoders or experiment.resolve().parent / RUN_CROSSCODERS), name, experiment)
    cc = load_crosscoders(directory, org.as_pair())[directory.name]
    ranking = read_ranking(ranking_file(experiment, name), directory, cc.dict_size).model_dump()
    config = summary.get("config") or {}
    contrast, pool = config.get("contrast", "paper"), config.get("pool", "a_excl")
    top = top_latents(cc, ranking, contrast, 1, pool)
    if not top:
        raise UserError(f"crosscoder {name} has no RL-side latent to follow")
    return Instrument(name, cc, top[0], cc.latent_group(top[0]), int(cc.info.layer), directory, contrast, pool)


# --- one step -------------------------------------------------------------------------------
def behaviour(model, tokenizer, records: list[dict], seed: int, batch_size: int, step: int) -> Rates:
    """Greedy strict and wrong-call rates (the organism's own evaluate)."""
    from tooldiff.organism.measure import evaluate

    metrics, _ = evaluate(model, tokenizer, records, seed, batch_size, f"calibration, RL step {step}")
    strict = metrics["by_kind"]["call"]["strict"]
    return Rates(strict=strict["mean"], wrong_calls={k: metrics["fpr_by_kind"][k] for k in NO_CALL_KINDS},
                 strict_ci95=tuple(strict["ci95"]))


def pair_activations(models: tuple, tokenizer, records_file: Path, layer: int, step: int, batch_size: int,
                     device: str):
    """Decision-position activations of (checkpoint, base) on the sample: the project's harvest."""
    from tooldiff.activations.harvest import HarvestSettings, harvest_models
    from tooldiff.activations.records import read_records
    from tooldiff.experiment.data import calibration_acts

    settings = HarvestSettings(layer=layer, positions="decision", batch_size=batch_size, device=device)
    with tempfile.TemporaryDirectory(prefix="emergence-acts-") as tmp:
        acts_dir = Path(tmp) / "acts"
        harvest_models(models, tokenizer, (f"rl@step-{step}", "base"), read_records(records_file), records_file,
                       acts_dir, settings)
        return calibration_acts(acts_dir, records_file)


@torch.no_grad()
def latent_readout(cc, latent: int, x_NMD: torch.Tensor, kinds: list[str]) -> LatentReadout:
    from tooldiff.features.stats import auroc

    f_N = cc.encode(x_NMD.float())[:, latent]
    call_N = torch.tensor([k == "call" for k in kinds])
    of_kind = {k: torch.tensor([kk == k for kk in kinds]) for k in REQUEST_KINDS}
    return LatentReadout(auroc=float(auroc(f_N[:, None], call_N)[0]),
                         mean_by_kind={k: float(f_N[m].mean()) for k, m in of_kind.items()},
                         firing_by_kind={k: float((f_N[m] > 0).float().mean()) for k, m in of_kind.items()})


def shift_share(cc, latent: int, x_NMD: torch.Tensor, kinds: list[str]) -> ShiftShare:
    """Mean (checkpoint − base) over tool prompts against the latent's raw RL-side decoder direction."""
    from tooldiff.features import model_shift
    from tooldiff.features.rank import TOOL_KINDS

    shift_D = model_shift(x_NMD, torch.tensor([k in TOOL_KINDS for k in kinds]))
    unit_D = cc.decoder_vector(latent, A, raw=True).float()
    unit_D = unit_D / unit_D.norm().clamp_min(1e-12)
    norm, projection = float(shift_D.norm()), float(shift_D @ unit_D)
    if norm < 1e-6:
        return ShiftShare(norm=norm, projection=projection, cos=None, share=None)
    return ShiftShare(norm=norm, projection=projection, cos=projection / norm, share=(projection / norm) ** 2)


@dataclass
class Walk:
    """What every step is read with: the organism, the instrument, the prompts, RL's own scores."""

    org: object
    instrument: Instrument
    sample: list[dict]
    sample_file: Path
    selection: dict[int, Rates]
    kept: Optional[int]
    config: EmergenceConfig


def step_row(step: int, model, walk: Walk) -> StepRow:
    """Every number of one checkpoint (`model`; the base at step 0)."""
    org, config, instrument = walk.org, walk.config, walk.instrument
    rates = behaviour(model, org.tokenizer, walk.sample, config.seed, config.batch_size, step)
    acts = pair_activations((model, org.base), org.tokenizer, walk.sample_file, instrument.layer, step,
                            config.batch_size, config.device)
    cc, latent = instrument.crosscoder, instrument.latent
    return StepRow(step=step, kept=step == walk.kept, calibration=rates, selection=walk.selection.get(step),
                   latent=latent_readout(cc, latent, acts.x_NMD, acts.kinds),
                   shift=shift_share(cc, latent, acts.x_NMD, acts.kinds))


# --- the run --------------------------------------------------------------------------------
def open_walk(org, experiment: Path, crosscoders: Optional[Path], out: Path, config: EmergenceConfig) -> Walk:
    """The instrument, RL's recorded scores, and the calibration sample (written to out/calibration.jsonl)."""
    instrument = load_instrument(org, Path(experiment), crosscoders, config.crosscoder)
    selection, kept = selection_scores(org.info)
    out.mkdir(parents=True, exist_ok=True)
    sample = calibration_sample(org.records("calibration"), config.caps, config.seed)
    (out / SAMPLE_FILE).write_text("".join(json.dumps(r) + "\n" for r in sample))
    return Walk(org, instrument, sample, out / SAMPLE_FILE, selection, kept, config)


def run_emergence(organism: Path, experiment: Path, out: Path, config: EmergenceConfig = EmergenceConfig(),
                  crosscoders: Optional[Path] = None) -> Emergence:
    """A row per saved RL checkpoint (and the base); writes emergence.json, .png and .md to `out`."""
    from tooldiff.organism import load_organism
    from tooldiff.organism.checkpoints import load_checkpoint

    load_organism(organism, models=False)  # a directory that is no organism says so first
    steps = saved_steps(organism)
    org = load_organism(organism, models=True, device=config.device)
    walk = open_walk(org, experiment, crosscoders, out, config)
    trained_steps = pick_steps(config.train_at, steps, walk.kept)
    rows, retrained = [step_row(0, org.base, walk)], []
    for step in steps:
        model = load_checkpoint(organism, step).to(org.base.device)
        rows.append(step_row(step, model, walk))
        if step in trained_steps:
            retrained.append(train_at(step, model, org, walk.instrument, out, config.device, config.min_auroc))
        del model
    result = summarize(walk, organism, experiment, rows, retrained, trained_steps)
    write_outputs(result, out)
    return result


def summarize(walk: Walk, organism: Path, experiment: Path, rows: list[StepRow], retrained: list[Retrained],
              trained_steps: list[int]) -> Emergence:
    ins = walk.instrument
    return Emergence(format=FORMAT, organism=str(Path(organism).resolve()),
                     experiment=str(Path(experiment).resolve()), crosscoder=ins.name, latent=ins.latent,
                     group=ins.group, layer=ins.layer, kept_step=walk.kept,
                     n={k: sum(r["kind"] == k for r in walk.sample) for k in REQUEST_KINDS}, rows=rows, retrained=retrained,
                     selection=selection_rule(walk.config.min_auroc) if trained_steps else None,
                     first_passing_step=first_passing(retrained))


def write_outputs(result: Emergence, out: Path) -> None:
    (out / JSON_FILE).write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    (out / TABLE_FILE).write_text(markdown_table(result))
    plot_emergence(result, out / PLOT_FILE)


# --- table and plot -------------------------------------------------------------------------
def _pct(x: Optional[float]) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _num(x: Optional[float], digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _table_line(row: StepRow) -> str:
    cal, val, lat, sh = row.calibration, row.selection, row.latent, row.shift
    step = f"{row.step} (base)" if row.step == 0 else f"{row.step} (kept)" if row.kept else str(row.step)
    wrong = " / ".join(_pct(cal.wrong_calls.get(k)) for k in NO_CALL_KINDS)
    val_wrong = " / ".join(_pct(val.wrong_calls.get(k)) for k in NO_CALL_KINDS) if val else "–"
    means = " / ".join(_num(lat.mean_by_kind[k], 2) for k in REQUEST_KINDS)
    return (f"| {step} | {_pct(cal.strict)} | {wrong} | {_pct(val.strict if val else None)} | {val_wrong} "
            f"| {_num(lat.auroc)} | {means} | {_num(sh.norm, 2)} | {_num(sh.cos)} | {_num(sh.share)} |")


def markdown_table(result: Emergence) -> str:
    n = result.n
    head = [f"Emergence of latent {result.latent} ({result.group}) of crosscoder {result.crosscoder}, layer "
            f"{result.layer}, along RL. Calibration: {n['call']} call, {n['not_offered']} not-offered, "
            f"{n['chitchat']} chit-chat prompts (greedy); selection: as RL recorded it (calibration + "
            "validation prompts). Rates in %.", "",
            "| RL step | strict (cal) | wrong calls, not-offered / chit-chat (cal) | strict (sel) "
            "| wrong calls (sel) | latent AUROC | mean activation, call / not-offered / chit-chat | ‖shift‖ "
            "| cos(shift, d) | share of shift² |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    return "\n".join(head + [_table_line(r) for r in result.rows] + _retrained_table(result)) + "\n"


def _retrained_table(result: Emergence) -> list[str]:
    if not result.retrained:
        return []
    first = result.first_passing_step
    lines = ["", f"Crosscoders trained at single checkpoints ({result.crosscoder}'s configuration). Selection: "
             f"{result.selection}. First step that passes: {first if first is not None else 'none'}.", "",
             "| RL step | top latent | group | strict AUROC | strict d | fires on call (%) "
             "| cos with the final latent | passes |", "|---|---|---|---|---|---|---|---|"]
    for r in result.retrained:
        lines.append(f"| {r.step} | {r.latent if r.latent is not None else '–'} | {r.group or '–'} "
                     f"| {_num(r.strict_auroc)} | {_num(r.strict_d, 2)} | {_pct(r.firing_call)} "
                     f"| {_num(r.cos_final)} | {'yes' if r.passes else 'no'} |")
    return lines


def plot_emergence(result: Emergence, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r.step for r in result.rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
    left.plot(steps, [r.calibration.strict for r in result.rows], "o-", label="strict, call (calibration)")
    for kind, style in zip(NO_CALL_KINDS, ("s--", "^--")):
        left.plot(steps, [r.calibration.wrong_calls[kind] for r in result.rows], style, label=f"wrong calls, {kind}")
    val = [(r.step, r.selection.strict) for r in result.rows if r.selection]
    if val:
        left.plot(*zip(*val), "x:", color="gray", label="strict, call (RL selection)")
    right.plot(steps, [r.latent.auroc for r in result.rows], "o-", label="latent AUROC, call vs no-call")
    right.plot(steps, [r.shift.share if r.shift.share is not None else float("nan") for r in result.rows], "s-",
               label="share of RL shift² along d")
    right.plot(steps, [r.shift.cos if r.shift.cos is not None else float("nan") for r in result.rows], "^--",
               label="cos(shift, d)")
    if result.retrained:
        right.plot([r.step for r in result.retrained],
                   [r.strict_auroc if r.strict_auroc is not None else float("nan") for r in result.retrained],
                   "D", color="black", mfc="none", label="own crosscoder's top latent, AUROC")
    for ax, title in ((left, "tool behaviour"), (right, f"latent {result.latent} of {result.crosscoder}")):
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlabel("RL step (0 = base)")
        ax.set_title(title)
        if result.kept_step is not None:
            ax.axvline(result.kept_step, color="black", lw=0.5, ls=":")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
