"""`GET /v1/steering/features`: the loaded crosscoder's latents, best tool features first.

The ranking comes from a `features.json` written by `tooldiff.features.rank_features`, looked
for next to the crosscoder (its directory, then its parent). Without one, the latents of the
served model are listed with their group and relative decoder norm Δ only (0 = RL-only,
1 = base-only), RL-exclusive first. The coupling is deliberately loose: any JSON file with a
"latents" list of {"latent", ...} objects works, and unknown keys are passed through.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from tooldiff.crosscoder import Crosscoder

RANKING_FILE = "features.json"
_KEPT_KEYS = ("latent", "group", "rl_dominant", "delta", "strict_auroc", "strict_d", "paper_auroc", "paper_d",
              "nu_eps", "nu_r", "firing")


def find_ranking(crosscoder_dir: Optional[Path]) -> Optional[Path]:
    if crosscoder_dir is None:
        return None
    for folder in (crosscoder_dir, crosscoder_dir.parent):
        if (folder / RANKING_FILE).is_file():
            return folder / RANKING_FILE
    return None


def list_features(crosscoder: Crosscoder, crosscoder_dir: Optional[Path], model_index: int, limit: int) -> dict:
    ranking = find_ranking(crosscoder_dir)
    rows = _ranked_rows(ranking, crosscoder) if ranking else None
    source = str(ranking) if rows is not None else "decoder_norms"
    if rows is None:
        rows = _norm_rows(crosscoder)
    owned = crosscoder.model_latents(model_index)
    for row in rows:  # which latents the served model can steer by feature id
        row["steerable"] = owned.start <= row["latent"] < owned.stop
    return {"object": "list", "source": source, "layer": crosscoder.info.layer, "model_index": model_index,
            "dict_size": crosscoder.dict_size, "data": rows[:limit]}


def _ranked_rows(path: Path, crosscoder: Crosscoder) -> Optional[list[dict]]:
    try:
        latents = json.loads(path.read_text()).get("latents")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None  # an unreadable ranking must not take the endpoint down: fall back
    if not isinstance(latents, list):
        return None
    rows = []
    for entry in latents:
        latent = entry.get("latent") if isinstance(entry, dict) else None
        if isinstance(latent, int) and 0 <= latent < crosscoder.dict_size:
            rows.append({k: entry[k] for k in _KEPT_KEYS if k in entry})
    return rows or None


def _norm_rows(crosscoder: Crosscoder) -> list[dict]:
    norms_ML = crosscoder.decoder_norms_ML().detach()
    norm_A, norm_B = norms_ML[0], norms_ML[1] if crosscoder.n_models > 1 else norms_ML[0] * 0
    delta_L = 0.5 * ((norm_B - norm_A) / norm_A.maximum(norm_B).clamp_min(1e-12) + 1)
    order = delta_L.argsort().tolist()  # RL-only (Δ = 0) first
    return [{"latent": i, "group": crosscoder.latent_group(i), "delta": round(float(delta_L[i]), 6)} for i in order]
