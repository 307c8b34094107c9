"""Resolve the pair's model references and check that the two models fit together, from their
config.json and tokenizer files alone: a mismatch is a UserError before any weight is loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from tooldiff.errors import UserError

# What a model directory needs: configs, tokenizer files and safetensors weights (never pickles).
MODEL_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"]


def resolve_model(ref: str, revision: Optional[str] = None) -> Path:
    """A local model directory: `ref` itself, or a Hub snapshot of it (cached; offline-safe)."""
    path = Path(ref).expanduser()
    if path.is_dir():
        return path.resolve()
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(ref, revision=revision, allow_patterns=MODEL_FILES))
    except Exception as e:  # hub errors have many types (offline, 404, gated); all mean "cannot get it"
        raise UserError(f"cannot get model {ref!r}: not a local directory and not downloadable "
                        f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None


def load_config(path: str | Path) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(path))
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read the model config in {path}: {str(e).splitlines()[0]}") from None


def config_dims(cfg: Any) -> tuple[int, int]:
    """(hidden size, decoder layers) of a transformers config, whatever the family calls them."""
    text = getattr(cfg, "text_config", None) or cfg
    hidden = getattr(text, "hidden_size", None) or getattr(text, "n_embd", None)
    layers = getattr(text, "num_hidden_layers", None) or getattr(text, "n_layer", None)
    if hidden is None or layers is None:
        raise UserError(f"model type {getattr(cfg, 'model_type', '?')!r}: config names no hidden size or layer count")
    return int(hidden), int(layers)


def check_pair_configs(cfg_a: Any, cfg_b: Any, layer: int) -> tuple[int, int]:
    """Same residual width and depth, and `layer` inside it; returns (d_model, n_layers)."""
    (d_a, n_a), (d_b, n_b) = config_dims(cfg_a), config_dims(cfg_b)
    if d_a != d_b:
        raise UserError(f"model pair mismatch: hidden sizes {d_a} vs {d_b}")
    if n_a != n_b:
        raise UserError(f"model pair mismatch: {n_a} vs {n_b} decoder layers")
    if not 0 <= layer < n_a:
        raise UserError(f"layer {layer} is out of range: the models have {n_a} decoder layers (0..{n_a - 1})")
    return d_a, n_a


def check_pair_tokenizers(dir_a: Path, dir_b: Path) -> None:
    """Both models must read the same token ids for the same text."""
    from tooldiff.hf import load_tokenizer

    if load_tokenizer(dir_a).get_vocab() != load_tokenizer(dir_b).get_vocab():
        raise UserError(f"model pair mismatch: the tokenizers of {dir_a} and {dir_b} have different vocabularies")


def check_pair_dirs(rl_dir: Path, base_dir: Path, layer: int) -> tuple[int, int]:
    """Configs and tokenizers of two local model directories; no weights are read."""
    dims = check_pair_configs(load_config(rl_dir), load_config(base_dir), layer)
    check_pair_tokenizers(rl_dir, base_dir)
    return dims
