"""`GET /v1/steering/features`: the loaded crosscoder's latents, best tool features first.

The ranking is the one the experiment wrote for this crosscoder (features/ranking.py):
- `--features PATH`: that ranking file, or an experiment directory holding
  `features/<crosscoder name>.json`; any problem with it stops the server at startup.
- otherwise the run layout of `tooldiff demo` / `tooldiff run`: `RUN/crosscoders/<name>` is ranked
  in `RUN/experiment/features/<name>.json`, used when it is there and belongs to this crosscoder.
Without a ranking the served model's latents are listed by relative decoder norm Δ (0 = RL-only,
1 = base-only), RL-exclusive first, and the response says so: `source` is "decoder_norms" and
`note` says why. With one, `source` names the file. Loaded once, at startup.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tooldiff.crosscoder import Crosscoder
from tooldiff.errors import UserError
from tooldiff.features.ranking import FeatureRanking, ranking_file, ranking_in_run, read_ranking

DECODER_NORMS = "decoder_norms"
_KEPT_KEYS = ("latent", "group", "rl_dominant", "delta", "strict_auroc", "strict_d", "paper_auroc", "paper_d",
              "nu_eps", "nu_r", "firing")


@dataclass(frozen=True)
class FeatureList:
    """The latents in listing order, where they come from, and why not from a ranking (if not)."""

    rows: list[dict]
    source: str
    note: Optional[str] = None


def load_feature_list(crosscoder: Crosscoder, crosscoder_dir: Path, features: Optional[str]) -> FeatureList:
    if features is not None:
        path = Path(features)
        if path.is_dir():  # an experiment directory
            path = ranking_file(path, Path(crosscoder_dir).name)
        return _ranked(read_ranking(path, crosscoder_dir, crosscoder.dict_size), path)
    path = ranking_in_run(crosscoder_dir)
    if not path.is_file():
        return by_decoder_norms(crosscoder, f"no ranking at {path}; start the server with --features RANKING_OR_EXPERIMENT_DIR")
    try:
        return _ranked(read_ranking(path, crosscoder_dir, crosscoder.dict_size), path)
    except UserError as e:
        return by_decoder_norms(crosscoder, f"the ranking found was not used: {e}")


def by_decoder_norms(crosscoder: Crosscoder, why: str) -> FeatureList:
    """The explicit fallback: latents by relative decoder norm, with the reason there is no ranking."""
    return FeatureList(_norm_rows(crosscoder), DECODER_NORMS, why)


def list_features(crosscoder: Crosscoder, name: Optional[str], features: FeatureList, model_index: int, limit: int) -> dict:
    owned = crosscoder.model_latents(model_index)
    rows = [{**row, "steerable": owned.start <= row["latent"] < owned.stop} for row in features.rows[:limit]]
    body = {"object": "list", "crosscoder": name, "source": features.source, "layer": crosscoder.info.layer,
            "model_index": model_index, "dict_size": crosscoder.dict_size, "data": rows}
    return body | ({"note": features.note} if features.note else {})


def _ranked(ranking: FeatureRanking, path: Path) -> FeatureList:
    rows = [_kept(entry.model_dump(exclude_unset=True)) for entry in ranking.latents]
    return FeatureList(rows, str(path))


def _kept(row: dict) -> dict:
    return {k: row[k] for k in _KEPT_KEYS if k in row}


def _norm_rows(crosscoder: Crosscoder) -> list[dict]:
    norms_ML = crosscoder.decoder_norms_ML().detach()
    norm_A, norm_B = norms_ML[0], norms_ML[1] if crosscoder.n_models > 1 else norms_ML[0] * 0
    delta_L = 0.5 * ((norm_B - norm_A) / norm_A.maximum(norm_B).clamp_min(1e-12) + 1)
    order = delta_L.argsort().tolist()  # RL-only (Δ = 0) first
    return [{"latent": i, "group": crosscoder.latent_group(i), "delta": round(float(delta_L[i]), 6)} for i in order]
