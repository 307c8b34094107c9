"""The `tooldiff` command line: one typer command per pipeline stage.

Heavy imports (torch, transformers, trl) happen inside the commands so that `--help` is instant.
`serve` has no list of its own: its options are the fields of `ServerSettings` (`options_of`).
`--verbose`, before the command, shows the libraries' own bars and warnings (progress.py).
"""

from __future__ import annotations

import inspect
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.text import Text

from tooldiff.errors import UserError
from tooldiff.progress import VERBOSE_ENV
from tooldiff.prompts import PROMPT_FORMATS
from tooldiff.serve.config import ServerSettings

app = typer.Typer(
    help="Find, prove and control the features an RL fine-tune adds for tool calling.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


@app.callback()
def options(verbose: bool = typer.Option(False, "--verbose", help="Also show the libraries' own progress bars and "
                                                                   "warnings (hidden by default).")) -> None:
    """Find, prove and control the features an RL fine-tune adds for tool calling."""
    if verbose:
        os.environ[VERBOSE_ENV] = "1"  # worker processes inherit it


# --- evaluation -------------------------------------------------------------------------
@app.command()
def score(
    bench: str = typer.Option(
        ..., help="bfcl:CATEGORY (simple, multiple, parallel, parallel_multiple, irrelevance, "
        "live_*) or a prompt-record .jsonl file."),
    predictions: Path = typer.Option(..., help='JSONL of {"id", "output"} lines.'),
    format: str = typer.Option("hermes", "--format", help="Output format: hermes|toolrl|openai."),
    out: Optional[Path] = typer.Option(None, help="Write summary + per-example JSON here."),
    lenient_parse: bool = typer.Option(False, help="Skip malformed call blocks instead of failing them."),
) -> None:
    """Score model predictions against a benchmark with BFCL-AST semantics."""
    from tooldiff.evaluation.score import run_score

    run_score(bench=bench, predictions=predictions, fmt=format, out=out, strict=not lenient_parse)


# --- organism ---------------------------------------------------------------------------
@app.command()
def organism(
    out: Path = typer.Option(..., help="Directory for base/, rl/, data/ and organism.json."),
    preset: str = typer.Option("default", help="tiny|default."),
    seed: int = typer.Option(0, help="Seed for data, pretraining and RL."),
    variant: str = typer.Option("full", help="full (RL tunes every weight) | rank1 (positive control) | "
                                "sham (null twin: the same RL, a reward that ignores tool use)."),
    force: bool = typer.Option(False, help="Rebuild from scratch, replacing the organism DIR holds."),
    shared_from: Path = typer.Option(None, help="A finished build with the same seed and pretraining config "
                                                "(any variant or RL settings) whose data, tokenizer and base are "
                                                "copied, not rebuilt."),
    threads: int = typer.Option(1, help="Torch threads for pretraining the base and for RL: "
                                         "the cores nothing else uses."),
    shipped: bool = typer.Option(False, help="Install the shipped default organism (seed 0; --variant full or "
                                             "rank1) into DIR instead of building it: the same on every machine."),
    ship: bool = typer.Option(False, help="Refresh the shipped pair: build (or reuse) seed 0 of the default preset "
                                          "in DIR and its rank1 twin in DIR-rank1, then write them into the package."),
) -> None:
    """Build the embedded model organism: tool world, tokenizer, base LM and its GRPO twin.

    A DIR that already holds the same preset, seed and variant is reused as is; an interrupted
    build in DIR resumes at the first unfinished stage.
    """
    from tooldiff.organism import build_organism
    from tooldiff.organism.ship import install_shipped, refresh_shipped

    if shipped and ship:
        raise UserError("--shipped installs the shipped pair and --ship rewrites it: pass one of them")
    if shipped:
        Console().print(f"shipped {variant} organism -> {install_shipped(out, variant)}", highlight=False)
    elif ship:
        Console().print(f"shipped pair refreshed -> {refresh_shipped(out, force=force, threads=threads)}",
                        highlight=False)
    else:
        build_organism(out=out, preset=preset, seed=seed, variant=variant, force=force, shared_from=shared_from,
                       threads=threads)


# --- activations ------------------------------------------------------------------------
@app.command()
def harvest(
    base: str = typer.Option(..., help="Base model (HF path or directory)."),
    rl: str = typer.Option(..., help="RL-tuned model (HF path or directory)."),
    layer: int = typer.Option(..., help="Decoder layer whose output is read."),
    data: Path = typer.Option(..., help="Prompt-record JSONL."),
    out: Path = typer.Option(..., help="Output directory for shards + manifest."),
    positions: str = typer.Option("decision", help="decision (last prompt token)|prompt|all (= prompt: records have no completions)."),
    batch_size: int = typer.Option(32, help="Prompts per forward pass."),
    shard_rows: int = typer.Option(65536, help="Rows per safetensors shard."),
    dtype: str = typer.Option("float32", help="Storage dtype: float32|float16|bfloat16."),
    device: str = typer.Option("cpu", help="cpu|cuda|cuda:N."),
    model_dtype: str = typer.Option("float32", help="Model compute dtype: float32|bfloat16|float16."),
) -> None:
    """Run both models on the same tokens and store layer-L activations side by side."""
    from tooldiff.activations import harvest_pair

    manifest = harvest_pair(
        base=base, rl=rl, layer=layer, data=data, out=out, positions=positions,
        batch_size=batch_size, shard_rows=shard_rows, dtype=dtype, device=device,
        model_dtype=model_dtype,
    )
    Console().print(f"{manifest.n_rows} rows ({positions}) from {manifest.n_prompts} prompts, layer {layer}, "
                    f"{len(manifest.shards)} shard(s) -> {out}", highlight=False, soft_wrap=True)


# --- crosscoder -------------------------------------------------------------------------
@app.command()
def train(
    acts: Path = typer.Option(..., help="Harvest directory."),
    config: str = typer.Option(..., help="Sweep TOML (one or many crosscoder configs), or a shipped sweep's name "
                                         "such as sweep-demo."),
    out: Path = typer.Option(..., help="Output directory, one subdirectory per config."),
    device: str = typer.Option("cpu", help="cpu|cuda|cuda:N."),
) -> None:
    """Train one crosscoder or a whole sweep in a single pass over the activations.

    Rerunning the same command resumes; `torchrun --nproc_per_node=N -m tooldiff.cli train ...` runs data-parallel.
    """
    from tooldiff.crosscoder import train_sweep
    from tooldiff.crosscoder.ddp import is_main_process

    metrics = train_sweep(acts=acts, config=config, out=out, device=device)
    if is_main_process():
        console = Console()
        for name, m in metrics.items():
            fve = " ".join(f"FVE[{k}]={v:.3f}" for k, v in m["fve"].items())
            console.print(f"{name}: {fve} L0={m['l0']:.1f} dead={m['dead_frac']:.2f} -> {out / name}", highlight=False,
                          soft_wrap=True)


# --- experiment -------------------------------------------------------------------------
@app.command()
def experiment(
    organism: Path = typer.Option(..., help="A built organism directory."),
    crosscoders: Path = typer.Option(..., help="A crosscoder checkpoint, or a directory of them (a sweep)."),
    out: Path = typer.Option(..., help="Output directory (results.jsonl resumes)."),
    n_per_kind: int = typer.Option(60, help="Test prompts per request kind."),
    seed: int = typer.Option(0, help="Seed for sampling, controls and bootstrap."),
    device: str = typer.Option("cpu", help="cpu|cuda|cuda:N."),
) -> None:
    """Splice, steer, ablate and transfer the top tool features on the TEST split, with controls."""
    from tooldiff.experiment import load_experiment_config, run_experiment
    from tooldiff.organism import load_organism
    from tooldiff.report import write_report

    cfg = load_experiment_config({"n_per_kind": n_per_kind, "seed": seed, "device": device})
    write_report(run_experiment(load_organism(organism, models=False).as_pair(), crosscoders, out, cfg), out)


@app.command("null-check")
def null_check(
    real: Path = typer.Option(..., help="A built organism whose twin is the real RL (variant full)."),
    sham: Path = typer.Option(..., help="The sham twin built from the same base (--variant sham --shared-from)."),
    out: Path = typer.Option(..., help="JSON file for the report."),
    n_prompts: int = typer.Option(400, help="rl-split prompts the KL to the base is measured on."),
    seed: int = typer.Option(0, help="Seed of the paired bootstrap."),
) -> None:
    """Is the sham twin a fair null: tool use untouched (±5 pp per kind), moved about as much as RL (2x)?"""
    from tooldiff.experiment.nulls import null_check as check
    from tooldiff.organism.store import write_json_atomic

    report = check(real, sham, n_prompts, seed)
    write_json_atomic(out, report)
    console = Console()
    for name in ("real", "sham"):
        twin = report[name]
        d = twin["drift"]
        shifts = ", ".join(f"{s['kind']} {100 * s['diff']:+.1f} pp" for s in twin["shifts"])
        console.print(f"{name}: ‖ΔW‖ {d['weight_norm']:.3f} ({100 * d['weight_rel']:.2f} %), KL per token "
                      f"{d['kl_all']:.4f}, at the decision {d['kl_decision']:.4f}; calls vs base: {shifts}",
                      highlight=False)
    console.print(f"fair null: {report['fair_null']} ({report['criteria']}) -> {out}", highlight=False)


@app.command()
def emergence(
    organism: Path = typer.Option(..., help="A built organism directory with RL checkpoints (rl/checkpoints)."),
    experiment: Path = typer.Option(..., help="The experiment directory of its final twin (features/<name>.json)."),
    out: Path = typer.Option(..., help="Writes emergence.json, emergence.png and emergence.md here."),
    crosscoders: Optional[Path] = typer.Option(None, help="Crosscoder checkpoints (default: "
                                                          "EXPERIMENT/../crosscoders)."),
    crosscoder: Optional[str] = typer.Option(None, help="Which ranked crosscoder (default: the first with "
                                                         "RL-exclusive latents)."),
    calls: int = typer.Option(60, help="Calibration call prompts at most."),
    not_offered: int = typer.Option(30, help="Calibration not-offered prompts at most."),
    chitchat: int = typer.Option(30, help="Calibration chit-chat prompts at most."),
    train_at: str = typer.Option("", help="Also train a crosscoder at these RL steps: 'auto' (first, middle, "
                                          "last, kept) or a comma list."),
    min_auroc: Optional[float] = typer.Option(None, help="Selection bar (strict AUROC) for those crosscoders' "
                                                         "RL-exclusive latent (default: features.ranking.MIN_AUROC)."),
    seed: int = typer.Option(0, help="Seed of the prompt sample and the bootstrap."),
    device: str = typer.Option("cpu", help="cpu|cuda|cuda:N."),
) -> None:
    """Follow the final twin's top tool latent through every saved RL checkpoint (calibration split)."""
    from tooldiff.experiment.emergence import EmergenceConfig, run_emergence

    cfg = EmergenceConfig(crosscoder=crosscoder, caps=(calls, not_offered, chitchat), seed=seed, device=device,
                          train_at=train_at, **({"min_auroc": min_auroc} if min_auroc is not None else {}))
    run_emergence(organism, experiment, out, cfg, crosscoders)


@app.command("null-pairs")
def null_pairs(
    organism: Path = typer.Option(..., help="A built organism (variant full): its real pair, and its base twice."),
    out: Path = typer.Option(..., help="One pipeline run per pair under OUT/<pair>, and OUT/null_pairs.{json,md}."),
    sham: Optional[Path] = typer.Option(None, help="Its sham twin (--variant sham --shared-from ORGANISM): a third pair."),
    sweep: Optional[str] = typer.Option(None, help="Sweep TOML, or a shipped sweep's name (default: sweep-demo)."),
    n_per_kind: int = typer.Option(70, help="Test prompts per request kind in each experiment."),
    min_auroc: Optional[float] = typer.Option(None, help="Tool-feature selection bar (default: features.ranking.MIN_AUROC)."),
    seed: int = typer.Option(0, help="Seed of every stage."),
    device: str = typer.Option("cpu", help="cpu|cuda|cuda:N."),
) -> None:
    """The instrument on pairs where RL taught no tool use (base vs base, sham): its false positives."""
    from tooldiff import configs
    from tooldiff.demo import DEMO_SWEEP
    from tooldiff.experiment import load_experiment_config
    from tooldiff.features.ranking import MIN_AUROC
    from tooldiff.nullpairs import TABLE_FILE, null_pairs as make_pairs, run_null_pairs
    from tooldiff.organism import load_organism

    cfg = load_experiment_config({"n_per_kind": n_per_kind, "seed": seed, "device": device})
    real = load_organism(organism, models=False).as_pair()
    twin = load_organism(sham, models=False).as_pair() if sham else None
    run_null_pairs(make_pairs(real, twin), configs.resolve(sweep) if sweep else DEMO_SWEEP, cfg, out,
                   MIN_AUROC if min_auroc is None else min_auroc)
    Console().print((out / TABLE_FILE).read_text(), highlight=False, soft_wrap=True)


@app.command()
def headroom(
    organism: Path = typer.Option(..., help="A built organism with RL checkpoints (rl/checkpoints)."),
    emergence: Path = typer.Option(..., help="Its emergence.json (`tooldiff emergence`): calibration strict per step."),
    out: Path = typer.Option(..., help="The exported checkpoint, one pipeline run per positions, headroom.md."),
    sweep: Optional[str] = typer.Option(None, help="Sweep TOML, or a shipped sweep's name (default: sweep-demo)."),
    n_per_kind: int = typer.Option(70, help="Test prompts per request kind in each experiment."),
    transfer_from: Optional[Path] = typer.Option(None, help="The final twin's crosscoders (RUN/crosscoders of the "
                                                          "real pair's run): add their top latents into the checkpoint."),
    seed: int = typer.Option(0, help="Seed of every stage."),
    device: str = typer.Option("cpu", help="cpu|cuda|cuda:N."),
) -> None:
    """Steer the top latent up in the RL checkpoint closest to 25 % strict (chosen on calibration)."""
    from tooldiff import configs
    from tooldiff.demo import DEMO_SWEEP
    from tooldiff.experiment import load_experiment_config
    from tooldiff.headroom import HeadroomJob, run_headroom
    from tooldiff.organism import load_organism

    cfg = load_experiment_config({"n_per_kind": n_per_kind, "seed": seed, "device": device})
    real = load_organism(organism, models=False).as_pair()
    table = run_headroom(HeadroomJob(real, organism, emergence, configs.resolve(sweep) if sweep else DEMO_SWEEP, cfg,
                                     out, transfer_from))
    Console().print(table.read_text(), highlight=False, soft_wrap=True)


@app.command()
def claims(
    results: list[Path] = typer.Argument(..., help="results.json of the real pair, one per organism seed."),
    null: list[Path] = typer.Option([], help="results.json of a null pair (OUT/<pair>/results.json of "
                                            "`tooldiff null-pairs`); repeat. Matched to a seed by its organism seed."),
    headroom: list[Path] = typer.Option([], help="A headroom run's directory (`tooldiff headroom --transfer-from`); "
                                                 "repeat. Adds the steering and transfer claims in that twin."),
    out: Path = typer.Option(Path("claims.md"), help="The claims table (markdown)."),
) -> None:
    """Each of the paper's claims beside our number, its rival and a null, with a verdict by written rules."""
    from tooldiff.headroom import claim_dirs
    from tooldiff.report.claims_table import write_claims

    twins = [claim_dirs(h) for h in headroom]
    Console().print(write_claims(results, null, out, twins).read_text(), highlight=False, soft_wrap=True)


@app.command()
def matrix(
    out: Path = typer.Option(..., help="OUT/seed-<s>/ per organism seed, OUT/claims.md and OUT/matrix.json."),
    seed: list[int] = typer.Option([0, 1, 2], help="Organism seeds (repeat the option); each with its crosscoder "
                                                   "seeds, positive control and null pair."),
    preset: str = typer.Option("default", help="Organism preset: tiny|default."),
    n_per_kind: int = typer.Option(70, help="Test prompts per request kind in each experiment (n = 3x per condition)."),
    sweep: Optional[str] = typer.Option(None, help="Sweep TOML, or a shipped sweep's name: the study's crosscoders and "
                                                   "the positive control's (default: sweep-demo and sweep-positive)."),
    nulls: bool = typer.Option(True, help="Run base vs base beside each real pair (the instrument's false positives)."),
    sham: bool = typer.Option(True, help="Build each seed's sham twin (RL whose reward ignores tool use) and run it as "
                                         "a third pair, with its fairness check (needs --nulls)."),
    positive_control: bool = typer.Option(True, help="Run the rank1 positive control at each seed."),
    rebuild: bool = typer.Option(False, help="Build seed 0 from the recipe too (default: the shipped pair)."),
    rl_course: bool = typer.Option(True, help="Emergence and the headroom twin at each seed built here (the "
                                              "shipped pair keeps no RL checkpoints)."),
    threads: int = typer.Option(os.cpu_count() or 1, help="Torch threads for the organism builds (they run alone)."),
    workers: int = typer.Option(os.cpu_count() or 1, help="Jobs side by side after the builds (pipelines, controls, "
                                                          "emergence, headroom), one torch thread and process each."),
    device: str = typer.Option("cpu", help="cpu|cuda|cuda:N."),
    publish: Optional[Path] = typer.Option(None, help="Then copy the quotable files to this directory (replaced "
                                                      "whole), as docs/results/matrix/ holds them."),
) -> None:
    """Every organism seed through the study, its positive control and its null pairs, then the
    claims judged across seeds; resumes where it stopped."""
    from tooldiff.matrix import MatrixConfig, publish as publish_to, run_matrix

    config = MatrixConfig(seeds=tuple(seed), preset=preset, n_per_kind=n_per_kind, sweep=sweep, nulls=nulls,
                          sham=sham and nulls, positive_control=positive_control, rebuild=rebuild,
                          rl_course=rl_course, threads=threads, workers=workers, device=device)
    Console().print(run_matrix(config, out).read_text(), highlight=False, soft_wrap=True)
    if publish is not None:
        Console().print(f"published -> {publish_to(out, publish)}", highlight=False)


# --- demo -------------------------------------------------------------------------------
@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), help="Output directory."),
    preset: str = typer.Option("default", help="Organism preset: tiny|default."),
    seed: int = typer.Option(0, help="Seed of every stage."),
    sweep: Optional[str] = typer.Option(None, help="Sweep TOML, or a shipped sweep's name: the study's crosscoders "
                                                   "and the positive control's (default: sweep-demo, and its DFC "
                                                   "kinds, sweep-positive, for the control)."),
    n_per_kind: int = typer.Option(60, help="Test prompts per request kind in the experiment."),
    positive_control: bool = typer.Option(True, help="Also run the rank1 positive-control organism."),
    threads: int = typer.Option(os.cpu_count() or 1, help="Torch threads for the organism's pretraining and RL "
                                                          "(the demo's only stage that runs alone)."),
    rebuild: bool = typer.Option(False, help="Build the organism from its recipe instead of installing the shipped "
                                             "pair (only preset default, seed 0 ships)."),
) -> None:
    """organism → harvest → sweep → features → experiment → report, on the embedded organism."""
    from tooldiff.demo import run_demo

    run_demo(out=out, preset=preset, seed=seed, sweep=sweep, n_per_kind=n_per_kind,
             positive_control=positive_control, threads=threads, rebuild=rebuild)


# --- dashboard --------------------------------------------------------------------------
@app.command()
def dashboard(
    experiment: Path = typer.Argument(..., help="Experiment directory (experiment.json, features/, calibration_acts/)."),
    out: Optional[Path] = typer.Option(None, help="Output directory, replaced whole (default: EXPERIMENT/dashboard)."),
    crosscoders: Optional[Path] = typer.Option(None, help="The crosscoder checkpoints (default: RUN/crosscoders beside "
                                                          "RUN/experiment, the layout of demo and run)."),
    organism: Optional[Path] = typer.Option(None, help="The organism (or a study's test JSONL) holding the test prompts "
                                                       "(default: the one beside the RL model)."),
    results: Optional[Path] = typer.Option(None, help="results.json with the findings and the positive-control verdict "
                                                      "(default: EXPERIMENT/results.json, else computed)."),
    positive: Optional[Path] = typer.Option(None, help="The positive control's experiment directory (a rank1 study): "
                                                       "its planted latents get pages too."),
    device: str = typer.Option("cpu", help="cpu|cuda|cuda:N."),
) -> None:
    """Write the feature dashboard: a static site (opens from file://) to browse every latent's evidence."""
    from tooldiff.report.dashboard import RunPaths, write_dashboard

    made = write_dashboard(RunPaths(experiment, crosscoders, organism, results, positive),
                           out or experiment / "dashboard", device=device)
    Console().print(f"dashboard: {made.pages} latent pages, {made.bytes / 1e6:.1f} MB, {made.seconds:.1f} s -> "
                    f"{made.out / 'index.html'}", highlight=False, soft_wrap=True)


# --- serve ------------------------------------------------------------------------------
def options_of(model_cls) -> inspect.Signature:
    """A command signature with one option per field of the pydantic `model_cls`: its type, its
    default (required when it has none), `--field-name` (or the field's `flag`), its description
    as help, and its `envvar` if any. The model stays the one list of settings."""
    params = []
    for name, field in model_cls.model_fields.items():
        extra = field.json_schema_extra or {}
        default = ... if field.is_required() else field.default
        option = typer.Option(default, extra.get("flag", "--" + name.replace("_", "-")), help=field.description,
                              envvar=extra.get("envvar"), show_default=default is not None and default is not ...)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=field.annotation))
    return inspect.Signature(params)


def serve(**settings) -> None:
    """Serve the model behind an OpenAI-compatible API with a per-request steering dial."""
    from tooldiff.serve import serve as run_server, server_settings

    run_server(server_settings(**settings), announce=lambda line: err_console.print(Text(line), soft_wrap=True))


serve.__signature__ = options_of(ServerSettings)  # type: ignore[attr-defined]
app.command()(serve)


# --- study (real model pairs) -----------------------------------------------------------
@app.command()
def run(
    config: str = typer.Argument(..., help="Study TOML, or a shipped study's name, e.g. qwen2.5-3b-toolrl."),
    plan: bool = typer.Option(False, "--plan", help="Only print the work (tokens, disk, memory, time); loads no weights."),
    out: Optional[Path] = typer.Option(None, help="Output directory (default: the config's 'out')."),
    device: Optional[str] = typer.Option(None, help="Override runtime.device: cpu|cuda|cuda:N."),
    dtype: Optional[str] = typer.Option(None, help="Override runtime.dtype: float32|bf16|fp16."),
) -> None:
    """Run every stage of a study on a model pair from one config file (harvest, sweep, experiment, report)."""
    from tooldiff.study import load_study, run_study

    cfg = load_study(config)
    overrides = {k: v for k, v in {"device": device, "dtype": dtype}.items() if v is not None}
    if overrides:
        if "dtype" in overrides:
            from tooldiff.hf import parse_dtype

            parse_dtype(overrides["dtype"])
        cfg = cfg.model_copy(update={"runtime": cfg.runtime.model_copy(update=overrides)})
    run_study(cfg, plan=plan, out=out)


bench_app = typer.Typer(help="Benchmark a (steered) model.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@bench_app.command("bfcl")
def bench_bfcl(
    model: str = typer.Option(..., help="Model directory (HF save_pretrained, safetensors)."),
    categories: str = typer.Option("simple_python,multiple,parallel,parallel_multiple,irrelevance",
                                   help="Comma-separated BFCL categories."),
    prompt_format: str = typer.Option("chat-template", help=" | ".join(PROMPT_FORMATS) + "."),
    steering: Optional[Path] = typer.Option(None, help="JSON list of interventions applied to every prompt."),
    crosscoder: Optional[Path] = typer.Option(None, help="Crosscoder checkpoint the steering's features refer to."),
    model_index: int = typer.Option(0, help="Crosscoder side of the model: 0 = A (RL), 1 = B (base)."),
    limit: Optional[int] = typer.Option(None, help="First N examples per category."),
    max_new_tokens: int = typer.Option(200, help="Greedy new tokens per prompt."),
    batch_size: int = typer.Option(8, help="Prompts per generation batch."),
    out: Path = typer.Option(Path("runs/bench-bfcl"), help="Writes examples.jsonl and summary.json here."),
    device: str = typer.Option("cpu", help="cpu|cuda|cuda:N."),
    dtype: str = typer.Option("float32", help="float32|bfloat16|float16."),
    seed: int = typer.Option(0, help="Bootstrap seed."),
) -> None:
    """Generate on BFCL categories and score them with BFCL-AST semantics (per-example JSONL + summary with CIs)."""
    from tooldiff.bench import parse_categories, run_bench_bfcl

    run_bench_bfcl(model=model, categories=parse_categories(categories), out=out, prompt_format=prompt_format,
                   steering=steering, crosscoder=crosscoder, model_index=model_index, limit=limit,
                   max_new_tokens=max_new_tokens, batch_size=batch_size, device=device, dtype=dtype, seed=seed)


def main() -> None:
    """Console-script entry: user errors become one red line and exit code 2.

    Click handles usage errors itself (exit 2 with usage); anything else is a bug and keeps
    its traceback.
    """
    try:
        app()
    except UserError as e:
        # Text, not markup: a message may hold brackets (paths, JSON) that rich would eat.
        err_console.print(Text.assemble(("error: ", "bold red"), str(e)), soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
