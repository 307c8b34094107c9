"""Everything that touches Hugging Face model internals, shared by every stage.

Loading and saving (safetensors only; transformers' own bars hidden, see
progress.library_quiet), the decoder-layer table, the layer-output tuple/tensor dance of
transformers 4 vs 5, prompt rendering through the chat template, and model-pair checks.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tooldiff.errors import UserError
from tooldiff.progress import library_quiet

# Where each architecture keeps its list of decoder blocks (config.model_type -> attribute path).
LAYER_PATHS: dict[str, str] = {
    "qwen2": "model.layers",
    "qwen3": "model.layers",
    "llama": "model.layers",
    "mistral": "model.layers",
    "gemma": "model.layers",
    "gemma2": "model.layers",
    "gemma3_text": "model.layers",
    "phi3": "model.layers",
    "gpt2": "transformer.h",
    "gpt_neox": "gpt_neox.layers",
}

# Where each architecture keeps the norm before its unembedding (the logit lens reads through it).
FINAL_NORM_PATHS: dict[str, str] = {
    **{arch: "model.norm" for arch, path in LAYER_PATHS.items() if path == "model.layers"},
    "gpt2": "transformer.ln_f",
    "gpt_neox": "gpt_neox.final_layer_norm",
}

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "fp32": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16,
}


def parse_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise UserError(f"unknown dtype {name!r}; choose one of {sorted(set(DTYPES))}")
    return DTYPES[name]


def resolve_device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {name!r} asked for, but CUDA is not available on this machine")
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise UserError(f"bad device {name!r}: {e}") from None


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The ModuleList of decoder blocks, by the table or (unknown archs) by shape."""
    model_type = getattr(model.config, "model_type", "")
    path = LAYER_PATHS.get(model_type)
    if path is not None:
        obj: Any = model
        for part in path.split("."):
            obj = getattr(obj, part)
        return obj
    n_layers = getattr(model.config, "num_hidden_layers", None)
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == n_layers:
            return module
    raise UserError(f"cannot find the decoder layers of model type {model_type!r}; add it to LAYER_PATHS")


def final_norm(model: nn.Module) -> nn.Module:
    """The norm applied before the unembedding, by the table."""
    model_type = getattr(model.config, "model_type", "")
    if model_type not in FINAL_NORM_PATHS:
        raise UserError(f"cannot find the final norm of model type {model_type!r}; add it to FINAL_NORM_PATHS")
    obj: Any = model
    for part in FINAL_NORM_PATHS[model_type].split("."):
        obj = getattr(obj, part)
    return obj


def n_layers(model: nn.Module) -> int:
    return len(decoder_layers(model))


def hidden_size(model: nn.Module) -> int:
    cfg = model.config
    return int(getattr(cfg, "hidden_size", None) or getattr(cfg, "n_embd"))


def check_layer(model: nn.Module, layer: int) -> None:
    _check_layer_index(layer, n_layers(model))


def _check_layer_index(layer: int, n: int) -> None:
    if not 0 <= layer < n:
        raise UserError(f"layer {layer} is out of range: the model has {n} decoder layers (0..{n - 1})")


def layer_hidden(output: Any) -> torch.Tensor:
    """The hidden state in a decoder layer's output (a tensor in transformers 5, else tuple[0])."""
    return output if isinstance(output, torch.Tensor) else output[0]


class StopForward(Exception):
    """Raised by `capture_layers(stop=True)` once its last layer ran: nothing above is needed."""


@contextlib.contextmanager
def capture_layers(model: nn.Module, layers: Sequence[int], stop: bool = False) -> Iterator[dict[int, torch.Tensor]]:
    """Hook decoder layers `layers`: during each forward pass, layer i's hidden output lands in the
    yielded dict under i. With `stop`, the pass ends with StopForward after the highest of them
    (the caller catches it)."""
    box: dict[int, torch.Tensor] = {}
    last = max(layers)

    def hook_for(index: int):
        def hook(_module, _inputs, output):
            box[index] = layer_hidden(output)
            if stop and index == last:
                raise StopForward
        return hook

    blocks = decoder_layers(model)
    handles = [blocks[i].register_forward_hook(hook_for(i)) for i in layers]
    try:
        yield box
    finally:
        for handle in handles:
            handle.remove()


def with_layer_hidden(output: Any, hidden: torch.Tensor) -> Any:
    """Rebuild a decoder layer's output with a new hidden state, keeping its structure."""
    if isinstance(output, torch.Tensor):
        return hidden
    return (hidden, *output[1:])


GENERIC_FAST_TOKENIZERS = ("PreTrainedTokenizerFast", "TokenizersBackend")


def load_tokenizer(path: str | Path):
    """Load a tokenizer exactly as saved.

    A tokenizer saved as the generic fast tokenizer (`tokenizer_class: PreTrainedTokenizerFast`,
    the organism's, or `TokenizersBackend`, what transformers 5 writes for one) is loaded as
    such: `AutoTokenizer` beside a qwen2 config would pick Qwen2Tokenizer, which re-splits
    digits (SPEC section 5) and turns other vocabularies into nothing at all.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    cfg_file = Path(path) / "tokenizer_config.json"
    try:
        with library_quiet():
            if cfg_file.is_file():
                cls = json.loads(cfg_file.read_text()).get("tokenizer_class")
                if cls in GENERIC_FAST_TOKENIZERS:
                    return PreTrainedTokenizerFast.from_pretrained(str(path))
            return AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError, json.JSONDecodeError) as e:
        raise UserError(f"cannot load tokenizer from {path}: {str(e).splitlines()[0]}") from None


def load_model(path: str | Path, device: str = "cpu", dtype: str = "float32") -> nn.Module:
    """Load a causal LM from safetensors weights only (never pickle), in eval mode."""
    from transformers import AutoModelForCausalLM

    try:
        with library_quiet():
            model = AutoModelForCausalLM.from_pretrained(str(path), dtype=parse_dtype(dtype), use_safetensors=True)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load model from {path}: {str(e).splitlines()[0]}") from None
    return model.to(resolve_device(device)).eval()


def save_model(model: nn.Module, path: str | Path) -> None:
    """save_pretrained as safetensors, without transformers' "Writing model shards" bar."""
    with library_quiet():
        model.save_pretrained(str(path), safe_serialization=True)


def render_prompt(tokenizer, record: dict) -> str:
    """A prompt record as model input text: chat template with tools, or raw generic text."""
    if "messages" not in record:
        if "text" not in record:
            raise UserError(f"record {record.get('id')!r} has neither 'messages' nor 'text'")
        return record["text"]
    if getattr(tokenizer, "chat_template", None) is None:
        # Tiny random test models have no template: a plain transcript keeps them usable.
        turns = [f"{m['role']}: {m['content']}" for m in record["messages"]]
        return "\n".join(turns) + "\nassistant:"
    kwargs = {"tools": record["tools"]} if record.get("tools") else {}
    return tokenizer.apply_chat_template(
        record["messages"], tokenize=False, add_generation_prompt=True, **kwargs
    )


def check_pair(model_a: nn.Module, model_b: nn.Module, tok_a, tok_b) -> None:
    """Both models must read the same tokens and have the same residual shape."""
    _check_shapes((hidden_size(model_a), n_layers(model_a)), (hidden_size(model_b), n_layers(model_b)))
    _check_vocab(tok_a, tok_b)


def check_pair_configs(path_a: str | Path, path_b: str | Path, tok_a, tok_b, layer: int) -> tuple[int, int]:
    """`check_pair` and `check_layer` from the config files alone, before any weights are read:
    a mismatched 3B pair should fail in a second, not after minutes of loading. (d_model, n_layers)."""
    dims = check_config_pair(load_config(path_a), load_config(path_b), layer)
    _check_vocab(tok_a, tok_b)
    return dims


def check_config_pair(cfg_a: Any, cfg_b: Any, layer: int) -> tuple[int, int]:
    """Two transformers configs: same residual width and depth, and `layer` inside it; (d_model, n_layers)."""
    shape_a = config_dims(cfg_a)
    _check_shapes(shape_a, config_dims(cfg_b))
    _check_layer_index(layer, shape_a[1])
    return shape_a


def load_config(path: str | Path) -> Any:
    """A model's transformers config (config.json only; no weights)."""
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


def _check_shapes(shape_a: tuple[int, int], shape_b: tuple[int, int]) -> None:
    (d_a, n_a), (d_b, n_b) = shape_a, shape_b
    if d_a != d_b:
        raise UserError(f"model pair mismatch: hidden sizes {d_a} vs {d_b}")
    if n_a != n_b:
        raise UserError(f"model pair mismatch: {n_a} vs {n_b} decoder layers")


def _check_vocab(tok_a, tok_b) -> None:
    if tok_a.get_vocab() != tok_b.get_vocab():
        raise UserError("model pair mismatch: the two tokenizers have different vocabularies")
