"""Organism configs: every number that shapes a build, in one hashable config.

The presets (`tiny`, `default`) are TOML files shipped in the package (configs/organism/), read
into these frozen dataclasses; a field a file leaves out takes the default written here."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from tooldiff.errors import UserError, read_toml
from tooldiff.organism.corpus import CorpusMix
from tooldiff.organism.requests import KindMix

VARIANTS = ("full", "rank1", "sham")


@dataclass(frozen=True)
class ModelShape:
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    max_position_embeddings: int = 256


@dataclass(frozen=True)
class PretrainConfig:
    """`drill_steps` of call logs only come before the `steps` on the full corpus: copying arguments
    appears as a sudden transition after some hundreds of steps of dense copy examples, and the
    mixed corpus alone did not reach it in the time budget. A step is `batch_size` whole documents
    (pretrain.py says why rows are never packed), each cut to `max_doc_len` tokens."""

    steps: int
    batch_size: int
    max_doc_len: int = 256  # the model's positions; cuts the tail of the longest 10 % of call logs
    lr: float = 3e-3
    warmup_steps: int = 50
    weight_decay: float = 0.01
    drill_steps: int = 0
    # The first `one_tool_drill_steps` of the drill show logs whose list holds one tool. With 1-4
    # tools no base learned the offered-tool check (AUROC ~0.5 after 600-1400 steps); with one
    # tool a scratch base jumped to 0.99 after ~550 steps and then read 1-4-tool lists at 0.82.
    one_tool_drill_steps: int = 0
    # Copying is a sudden transition whose step varies with the seed (default preset: seed 0 had it
    # within the drill, seed 1 not: forced calls 19 % on calibration, 76 % after 300 more drill
    # steps), and each argument kind has its own (languages and currencies came last). So: check
    # `copy_check` calibration call prompts after pretraining and drill on in chunks of
    # `extra_drill_chunk` steps, at most `max_extra_drill_steps`, until the base copies, overall
    # and for every tool; each chunk weights the tools still wrong (build._focus_on_errors).
    copy_check: int = 0  # 0: no check
    max_extra_drill_steps: int = 0
    extra_drill_chunk: int = 150
    # Chat transcripts among the extra drill's documents: they keep the assistant's habit of not
    # calling. Logs alone, once the base reads the tool list, taught it to call after the
    # assistant header too (seed 1: base strict 0.48 after 300 extra steps of logs).
    extra_drill_transcripts: float = 0.5

    def __post_init__(self):
        if not 0 <= self.one_tool_drill_steps <= self.drill_steps:
            raise UserError(f"one_tool_drill_steps ({self.one_tool_drill_steps}) must lie within 0 and "
                            f"drill_steps ({self.drill_steps})")

    @property
    def total_steps(self) -> int:
        return self.drill_steps + self.steps


@dataclass(frozen=True)
class RLConfig:
    steps: int
    prompts_per_step: int
    num_generations: int
    lr: float
    max_completion_length: int = 40
    temperature: float = 1.0
    rank1_lr: float = 3e-2  # the rank-1 variant trains 2 vectors, not the whole model
    rank1_steps: int | None = None  # None: `steps` (2 vectors at a high lr need fewer steps)
    rank1_layer: int | None = None  # None: the middle layer
    call_first_steps: int = 0  # curriculum: the first steps see only prompts that need a call
    # Shares of call / not-offered / chit-chat prompts RL samples from the rl split (None: as the
    # split has them). An RL setting, so a base can be shared by builds that differ in it.
    kind_shares: tuple[float, float, float] | None = None
    # The rank1 control's RL can only move one direction: on a base that cannot tell the kinds
    # apart that is a global bias, and with the rl split's own mix it tipped to "never call"
    # (default, seed 0: call rate 0 on every kind). Mostly tool-needed prompts make the planted
    # direction the one that induces calling, which is what the control must plant.
    rank1_kind_shares: tuple[float, float, float] | None = (0.8, 0.1, 0.1)
    kl_beta: float = 0.0  # TRL's KL coefficient to the base (0: no reference model is run)
    # Checkpoint selection (checkpoints.py): score the twin on validation prompts (phrasings no
    # split uses) every `eval_every` steps, at the `eval_early` steps and at the last, save each
    # checkpoint, keep the best by the rule there. Neither set: keep the last step, save none.
    # `eval_prompts`: validation prompts per kind (call, not_offered, chitchat).
    eval_every: int = 0
    eval_early: tuple[int, ...] = ()
    eval_prompts: tuple[int, int, int] = (120, 60, 60)
    # Keep the uniform average of the checkpoints saved from step `average_from` on, when it passes
    # the rule's wrong-call bound on the selection prompts; else the rule's best single checkpoint
    # (checkpoints.py). 0: keep a single checkpoint.
    average_from: int = 0

    def checkpoint_steps(self) -> tuple[int, ...]:
        """The steps at which the twin is scored and saved (empty: none)."""
        if not (self.eval_every or self.eval_early):
            return ()
        every = range(self.eval_every, self.steps + 1, self.eval_every) if self.eval_every else ()
        return tuple(sorted({s for s in (*self.eval_early, *every) if 0 < s <= self.steps} | {self.steps}))


@dataclass(frozen=True)
class OrganismConfig:
    name: str
    splits: dict[str, KindMix]
    generic_per_split: int
    corpus: CorpusMix
    vocab_size: int
    model: ModelShape
    pretrain: PretrainConfig
    rl: RLConfig
    eval_batch_size: int = 64
    tokenizer_docs: int = 20000  # corpus documents the BPE is trained on
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The config plus a fingerprint of the tool world's code, which shapes every split: a
        build made with other tools or phrasings is then neither reused nor shared."""
        from tooldiff.organism.world import world_fingerprint

        return asdict(self) | {"world": world_fingerprint()}

    def hash(self, seed: int, variant: str) -> str:
        """Identity of a build: same hash means a directory can be reused as is."""
        blob = json.dumps({"config": self.to_dict(), "seed": seed, "variant": variant}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def pretraining_part(config: dict) -> dict:
    """What data, tokenizer and base depend on (all but RL and evaluation) of a config dict,
    JSON-normalised as organism.json stores it: two builds that agree on it can share a base."""
    return json.loads(json.dumps({k: v for k, v in config.items() if k not in ("rl", "eval_batch_size")}))


PRESET_DIR = Path(__file__).resolve().parents[1] / "configs" / "organism"  # package data: <name>.toml
SECTIONS = {"model": ModelShape, "pretrain": PretrainConfig, "rl": RLConfig, "corpus": CorpusMix}


def _tuples(value):
    """TOML arrays as the tuples the frozen configs hold (hashable, as the Python presets were)."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _section(cls, raw, where: str):
    if not isinstance(raw, dict):
        raise UserError(f"{where} must be a table")
    try:
        return cls(**{k: _tuples(v) for k, v in raw.items()})
    except TypeError as e:  # an unknown or missing field
        raise UserError(f"{where}: {e}") from None


def preset_from_toml(path: Path) -> OrganismConfig:
    """An organism config from a preset file; an unknown or missing field is one UserError line."""
    raw = dict(read_toml(path, "organism preset"))
    parts = {name: _section(cls, raw.pop(name, None), f"{path} [{name}]") for name, cls in SECTIONS.items()}
    splits = raw.pop("splits", None)
    if not isinstance(splits, dict):
        raise UserError(f"{path}: [splits] must be a table of split = {{ call, not_offered, chitchat }}")
    parts["splits"] = {name: _section(KindMix, mix, f"{path} [splits] {name}") for name, mix in splits.items()}
    return _section(OrganismConfig, raw | parts, str(path))


PRESETS: dict[str, OrganismConfig] = {p.stem: preset_from_toml(p) for p in sorted(PRESET_DIR.glob("*.toml"))}


def get_preset(name: str, **overrides) -> OrganismConfig:
    """A preset by name, optionally with top-level fields replaced (tests use tiny variants)."""
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides) if overrides else PRESETS[name]


def check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise UserError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
