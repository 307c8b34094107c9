"""Resolve the pair's model references and check that the two models fit together, from their
config.json and tokenizer files alone: a mismatch is a UserError before any weight is loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from tooldiff import hf
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


def check_pair_dirs(rl_dir: Path, base_dir: Path, layer: int) -> tuple[int, int]:
    """Configs and tokenizers of two local model directories; no weights are read."""
    return hf.check_pair_configs(rl_dir, base_dir, hf.load_tokenizer(rl_dir), hf.load_tokenizer(base_dir), layer)
