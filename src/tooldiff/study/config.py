"""The study config: one TOML file that names the pair, the layer, the data, the sweep and the
experiment grid, so that `tooldiff run CONFIG` can run every stage.

Relative paths in the file are resolved against the file's own directory, so a config and the
data it names can move together — except in a config shipped inside the package (tooldiff.configs),
whose `out` and local data sources resolve against the working directory (the package is no place
to write runs or keep data); its sweep file and model config.json files sit beside it.
Unknown keys are errors that name the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tooldiff import configs
from tooldiff.errors import read_toml, validated
from tooldiff.prompts import PromptFormat


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PairConfig(_Strict):
    """The model pair. `base`/`rl` are HF ids or local directories; `*_config` are local
    directories holding only config.json, read by `--plan` so that no weights are needed."""

    base: str
    rl: str
    base_config: Optional[str] = None
    rl_config: Optional[str] = None
    layer: int = Field(..., ge=0)
    positions: Literal["decision", "prompt", "all"] = "decision"
    prompt_format: PromptFormat = "chat-template"
    revision: Optional[str] = Field(None, description="Hub revision of both models (a commit pins them).")


class RuntimeConfig(_Strict):
    device: str = "cpu"
    dtype: str = "float32"  # model compute dtype: float32 | bfloat16 | float16
    store_dtype: str = "float32"  # dtype of the stored activations
    harvest_batch_size: int = Field(32, gt=0)
    shard_rows: int = Field(65536, gt=0)
    gpu: str = Field("h200", description="The GPU whose measured rates --plan uses (tooldiff.study.rates).")
    gpu_memory_gb: float = Field(80.0, gt=0, description="Accelerator memory --plan checks against.")


class DataSource(_Strict):
    """One source of prompts: a local .jsonl / .parquet file or an HF `datasets` path.

    Rows are prompt records (`messages`, `tools`, `gold`) or, with `text_field`, generic text.
    """

    source: str
    split: str = "train"  # the HF datasets split (ignored for local files)
    name: Optional[str] = None  # the HF datasets config name
    text_field: Optional[str] = None  # read this column as generic text
    kind: Optional[str] = None  # overrides the records' kind
    limit: Optional[int] = Field(None, gt=0)
    skip: int = Field(0, ge=0, description="Rows skipped first: keeps splits of one source disjoint.")
    mean_tokens: int = Field(256, gt=0, description="Average prompt length, used by --plan only.")


class DataConfig(_Strict):
    """train: crosscoder activations; calibration: feature ranking; test: the experiment.
    The three must not overlap (SPEC section 1: select and evaluate on disjoint splits)."""

    train: list[DataSource] = Field(..., min_length=1)
    calibration: list[DataSource] = Field(..., min_length=1)
    test: list[DataSource] = Field(..., min_length=1)


class SweepRef(_Strict):
    """A sweep file (`file`) or an inline sweep (`train` + `crosscoder` tables), not both."""

    file: Optional[str] = None
    train: Optional[dict[str, Any]] = None
    crosscoder: Optional[list[dict[str, Any]]] = None

    @model_validator(mode="after")
    def _one_of(self) -> "SweepRef":
        if (self.file is None) == (self.crosscoder is None):
            raise ValueError("give either sweep.file or inline [[sweep.crosscoder]] tables")
        return self


class StudyConfig(_Strict):
    name: str = "study"
    out: str = "runs/study"
    seed: int = 0
    pair: PairConfig
    runtime: RuntimeConfig = RuntimeConfig()
    data: DataConfig
    sweep: SweepRef
    experiment: dict[str, Any] = Field(default_factory=dict, description="ExperimentConfig fields.")
    root: Path = Field(Path("."), exclude=True, description="Directory relative paths resolve against.")
    work_root: Optional[Path] = Field(None, exclude=True,
                                      description="Directory `out` and local data resolve against (default: root).")

    def path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.root / p

    def work_path(self, value: str) -> Path:
        """A path the study writes or reads data at: `out` and local data sources."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.work_root or self.root) / p

    def local_or_id(self, value: str) -> str:
        """A model reference: a local path if it exists relative to the config, else the HF id."""
        candidate = self.path(value)
        return str(candidate) if candidate.exists() else value


def load_study(path: str | Path) -> StudyConfig:
    """Read and validate a study TOML (a file, or the name of a shipped one); every mistake is a
    one-line UserError."""
    path = configs.resolve(path)
    raw = read_toml(path, "study config")
    work_root = Path.cwd() if configs.is_shipped(path) else None
    return validated(StudyConfig, {**raw, "root": path.resolve().parent, "work_root": work_root}, str(path))
