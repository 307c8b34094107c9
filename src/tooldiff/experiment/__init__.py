"""Stage: the paper's experiment on the TEST split, with controls and rival baselines."""

from tooldiff.experiment.config import ExperimentConfig, load_experiment_config
from tooldiff.experiment.run import run_experiment

__all__ = ["ExperimentConfig", "load_experiment_config", "run_experiment"]
