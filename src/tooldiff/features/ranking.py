"""A crosscoder's tool-feature ranking as a file: where the experiment writes it, how it is read back.

`tooldiff experiment` (and the demo and `tooldiff run`, which call it) writes
`EXPERIMENT/features/<crosscoder name>.json` (`FeatureRanking`, format 1): what `rank_features`
returns, plus `"crosscoder": {"name", "weights_sha256"}`, the checksum of the weights it was computed from (the
one the checkpoint's config.json records). A reader (the server's `/v1/steering/features`) can so
tell a ranking of this crosscoder from a stale one or another crosscoder's. In the run layout of
`tooldiff demo` and `tooldiff run` (`RUN/crosscoders/<name>/`, `RUN/experiment/`) a crosscoder's
ranking is found from the crosscoder's directory alone (`ranking_in_run`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Optional

from tooldiff.artifacts import Artifact, Num, Record, read_artifact, write_artifact
from tooldiff.crosscoder.model import CONFIG_FILE
from tooldiff.errors import UserError

RANKINGS_DIR = "features"
RUN_CROSSCODERS, RUN_EXPERIMENT = "crosscoders", "experiment"


TOOL_GROUP = "a_excl"  # the RL-side exclusive latents (features/rank.py GROUPS): where RL's own features live
MIN_AUROC = 0.7  # a tool latent's strict AUROC bar (should-call vs no-call, calibration); provisional


def passes_selection(group: str, strict_auroc: float, min_auroc: float = MIN_AUROC) -> bool:
    """Is a latent an RL tool feature by the selection rule (`selection_rule`)?"""
    return group == TOOL_GROUP and strict_auroc >= min_auroc


def selection_rule(min_auroc: float = MIN_AUROC) -> str:
    return (f"RL-exclusive ({TOOL_GROUP}) and strict AUROC (should-call vs no-call, calibration) "
            f">= {min_auroc:g} (provisional: no project-wide rule yet)")


def ranking_file(experiment_dir: Path, name: str) -> Path:
    return Path(experiment_dir) / RANKINGS_DIR / f"{name}.json"


def ranking_in_run(crosscoder_dir: Path) -> Path:
    """Where the run layout puts the ranking of the crosscoder in `RUN/crosscoders/<name>`."""
    crosscoder_dir = Path(crosscoder_dir).resolve()
    return ranking_file(crosscoder_dir.parent.parent / RUN_EXPERIMENT, crosscoder_dir.name)


def weights_digest(crosscoder_dir: Path) -> Optional[str]:
    """The weights checksum a checkpoint's config.json records (None for a checkpoint without one)."""
    try:
        return json.loads((Path(crosscoder_dir) / CONFIG_FILE).read_text()).get("weights_sha256")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


class LatentRow(Record):
    """One latent's statistics on the calibration split (features.rank.rank_features)."""

    latent: int
    group: str
    rl_dominant: bool
    delta: Num
    rl_norm_share: Num
    strict_d: Num
    strict_auroc: Num
    nu_eps: Num
    nu_r: Num
    firing: dict[str, Num]
    paper_d: Optional[Num] = None  # only with generic calibration text (the paper's contrast)
    paper_auroc: Optional[Num] = None


class RankingOwner(Record):
    name: str
    weights_sha256: Optional[str] = None


class FeatureRanking(Artifact):
    """`EXPERIMENT/features/<crosscoder>.json`: every latent, best tool features first."""

    WHAT: ClassVar[str] = "feature ranking"
    RERUN: ClassVar[str] = "rerun `tooldiff experiment` to rank this crosscoder's features again"

    n: dict[str, int]
    latents: list[LatentRow]
    best: dict[str, dict[str, Optional[int]]]  # contrast -> group -> latent
    least_related: list[int]
    examples: dict[str, list[dict[str, Any]]] = {}
    crosscoder: Optional[RankingOwner] = None  # set in the file, not in the experiment summary's copy

    def check_owner(self, path: Path, crosscoder_dir: Path, dict_size: int) -> "FeatureRanking":
        """This ranking, if it ranks every latent of the checkpoint in `crosscoder_dir` and was
        computed from its weights; else a one-line UserError naming `path`."""
        if sorted(r.latent for r in self.latents) != list(range(dict_size)):
            raise UserError(f"{path} does not rank the {dict_size} latents of crosscoder {crosscoder_dir}")
        recorded, served = self.crosscoder.weights_sha256 if self.crosscoder else None, weights_digest(crosscoder_dir)
        if recorded and served and recorded != served:
            raise UserError(f"{path} was computed from other weights than crosscoder {crosscoder_dir} "
                            "(weights_sha256 differs); point --features at this crosscoder's ranking")
        return self


    def passing(self, min_auroc: float = MIN_AUROC) -> list[int]:
        """The latents that pass the tool-feature selection (`passes_selection`), best first."""
        return [r.latent for r in self.latents if passes_selection(r.group, r.strict_auroc, min_auroc)]


def write_ranking(experiment_dir: Path, name: str, ranking: dict, crosscoder_dir: Path) -> Path:
    """Write the ranking of crosscoder `name` (checkpoint `crosscoder_dir`) atomically; returns its path."""
    owner = {"name": name, "weights_sha256": weights_digest(crosscoder_dir)}
    return write_artifact(FeatureRanking.new(**ranking, crosscoder=owner), ranking_file(experiment_dir, name))


def read_ranking(path: Path, crosscoder_dir: Path, dict_size: int) -> FeatureRanking:
    """The ranking in `path`, checked to belong to the checkpoint in `crosscoder_dir`; a missing,
    unreadable, old or foreign file is a one-line UserError."""
    return read_artifact(FeatureRanking, Path(path)).check_owner(Path(path), crosscoder_dir, dict_size)
