"""Stage: rank crosscoder latents as tool features on the calibration split."""

from tooldiff.features.directions import diff_of_means, model_shift, random_directions
from tooldiff.features.plot import plot_d_vs_delta
from tooldiff.features.rank import CalibrationActs, rank_features

__all__ = [
    "CalibrationActs", "rank_features", "plot_d_vs_delta",
    "diff_of_means", "model_shift", "random_directions",
]
