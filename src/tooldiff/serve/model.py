"""The served model: weights, tokenizer, optional crosscoder, and what requests need of them.

Loaded once at startup (safetensors only, through `tooldiff.hf`); every failure to load is a
`UserError` raised before the server binds its port.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from torch import nn

from tooldiff.crosscoder import Crosscoder
from tooldiff.evaluation.parsing import CALL_OPEN
from tooldiff.hf import load_model, load_tokenizer
from tooldiff.serve.config import ServerSettings
from tooldiff.serve.features import FeatureList, load_feature_list

DEFAULT_CONTEXT = 4096


@dataclass
class ServedModel:
    model: nn.Module
    tokenizer: Any
    name: str
    crosscoder: Optional[Crosscoder] = None
    crosscoder_dir: Optional[Path] = None
    model_index: int = 0
    features: Optional[FeatureList] = None  # what /v1/steering/features lists (with a crosscoder)

    @property
    def context_length(self) -> int:
        cfg = self.model.config
        return int(getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None) or DEFAULT_CONTEXT)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True)

    def call_open_token_ids(self) -> tuple[int, ...]:
        """The token(s) that can open a call, banned under tool_choice "none".

        Only a call tag that is one token (an added token, as in Qwen2.5 and the organism) can
        be banned exactly; otherwise the text path (prompt without tools) is all there is.
        """
        ids = self.tokenizer(CALL_OPEN, add_special_tokens=False)["input_ids"]
        return tuple(ids) if len(ids) == 1 else ()


def load_served(settings: ServerSettings) -> ServedModel:
    model = load_model(settings.model, device=settings.device, dtype=settings.dtype)
    tokenizer = load_tokenizer(settings.model)
    crosscoder = crosscoder_dir = features = None
    if settings.crosscoder:
        crosscoder_dir = Path(settings.crosscoder)
        crosscoder = Crosscoder.load(crosscoder_dir, device=settings.device)
        features = load_feature_list(crosscoder, crosscoder_dir, settings.features)
    index = settings.model_index if settings.model_index is not None else infer_model_index(settings.model, crosscoder)
    name = settings.model_name or Path(settings.model).resolve().name or str(settings.model)
    return ServedModel(model, tokenizer, name, crosscoder, crosscoder_dir, index, features)


def infer_model_index(model_path: str, crosscoder: Optional[Crosscoder]) -> int:
    """Which side of the crosscoder the served model is: by the paths recorded at harvest.

    Model 0 (A) is the RL model; a served model recorded as the crosscoder's model 1 is the
    base. Unknown paths default to A, the model the dial is for.
    """
    if crosscoder is None:
        return 0
    served = _canonical(model_path)
    for index, recorded in enumerate(crosscoder.info.models):
        if _canonical(recorded) == served:
            return index
    return 0


def _canonical(path: str) -> str:
    p = Path(path)
    return str(p.resolve()) if p.exists() else str(path)
