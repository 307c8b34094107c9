"""A crosscoder's tool-feature ranking as a file: where the experiment writes it, how it is read back.

`tooldiff experiment` (and the demo and `tooldiff run`, which call it) writes
`EXPERIMENT/features/<crosscoder name>.json`: what `rank_features` returns, plus
`"crosscoder": {"name", "weights_sha256"}`, the checksum of the weights it was computed from (the
one the checkpoint's config.json records). A reader (the server's `/v1/steering/features`) can so
tell a ranking of this crosscoder from a stale one or another crosscoder's. In the run layout of
`tooldiff demo` and `tooldiff run` (`RUN/crosscoders/<name>/`, `RUN/experiment/`) a crosscoder's
ranking is found from the crosscoder's directory alone (`ranking_in_run`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from tooldiff.crosscoder.model import CONFIG_FILE
from tooldiff.errors import UserError

RANKINGS_DIR = "features"
RUN_CROSSCODERS, RUN_EXPERIMENT = "crosscoders", "experiment"


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


def write_ranking(experiment_dir: Path, name: str, ranking: dict, crosscoder_dir: Path) -> Path:
    """Write the ranking of crosscoder `name` (checkpoint `crosscoder_dir`) atomically; returns its path."""
    path = ranking_file(experiment_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    owner = {"name": name, "weights_sha256": weights_digest(crosscoder_dir)}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({**ranking, "crosscoder": owner}, indent=1))
    tmp.replace(path)
    return path


def read_ranking(path: Path, crosscoder_dir: Path, dict_size: int) -> dict:
    """The ranking in `path`, checked to belong to the checkpoint in `crosscoder_dir`; a missing,
    unreadable or foreign file is a one-line UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"feature ranking {path} does not exist")
    try:
        ranking = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"feature ranking {path} is not readable JSON ({e})") from None
    latents = ranking.get("latents") if isinstance(ranking, dict) else None
    if not isinstance(latents, list) or not all(isinstance(r, dict) for r in latents):
        raise UserError(f"{path} is not a feature ranking: it has no \"latents\" list")
    if sorted(r.get("latent", -1) for r in latents) != list(range(dict_size)):
        raise UserError(f"{path} does not rank the {dict_size} latents of crosscoder {crosscoder_dir}")
    recorded, served = (ranking.get("crosscoder") or {}).get("weights_sha256"), weights_digest(crosscoder_dir)
    if recorded and served and recorded != served:
        raise UserError(f"{path} was computed from other weights than crosscoder {crosscoder_dir} "
                        "(weights_sha256 differs); point --features at this crosscoder's ranking")
    return ranking
