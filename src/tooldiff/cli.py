"""The `tooldiff` command line: one typer command per pipeline stage.

Heavy imports (torch, transformers, trl) happen inside the commands so that `--help` is instant.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.text import Text

from tooldiff.errors import UserError

app = typer.Typer(
    help="Find, prove and control the features an RL fine-tune adds for tool calling.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


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
    variant: str = typer.Option("full", help="full (RL tunes every weight) | rank1 (positive control)."),
    force: bool = typer.Option(False, help="Rebuild even if DIR holds another organism."),
) -> None:
    """Build the embedded model organism: tool world, tokenizer, base LM and its GRPO twin."""
    from tooldiff.organism import build_organism

    build_organism(out=out, preset=preset, seed=seed, variant=variant, force=force)


# --- activations ------------------------------------------------------------------------
@app.command()
def harvest(
    base: str = typer.Option(..., help="Base model (HF path or directory)."),
    rl: str = typer.Option(..., help="RL-tuned model (HF path or directory)."),
    layer: int = typer.Option(..., help="Decoder layer whose output is read."),
    data: Path = typer.Option(..., help="Prompt-record JSONL."),
    out: Path = typer.Option(..., help="Output directory for shards + manifest."),
    positions: str = typer.Option("decision", help="decision|prompt|all."),
    batch_size: int = typer.Option(32, help="Prompts per forward pass."),
    shard_rows: int = typer.Option(65536, help="Rows per safetensors shard."),
    dtype: str = typer.Option("float32", help="Storage dtype: float32|float16|bfloat16."),
    device: str = typer.Option("cpu", help="cpu|cuda|cuda:N."),
    model_dtype: str = typer.Option("float32", help="Model compute dtype: float32|bfloat16|float16."),
) -> None:
    """Run both models on the same tokens and store layer-L activations side by side."""
    from tooldiff.activations import harvest_pair

    harvest_pair(
        base=base, rl=rl, layer=layer, data=data, out=out, positions=positions,
        batch_size=batch_size, shard_rows=shard_rows, dtype=dtype, device=device,
        model_dtype=model_dtype,
    )


# --- crosscoder -------------------------------------------------------------------------
@app.command()
def train(
    acts: Path = typer.Option(..., help="Harvest directory."),
    config: Path = typer.Option(..., help="Sweep TOML: one or many crosscoder configs."),
    out: Path = typer.Option(..., help="Output directory, one subdirectory per config."),
    device: str = typer.Option("cpu", help="cpu|cuda|cuda:N."),
) -> None:
    """Train one crosscoder or a whole sweep in a single pass over the activations."""
    from tooldiff.crosscoder import train_sweep

    train_sweep(acts=acts, config=config, out=out, device=device)


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
