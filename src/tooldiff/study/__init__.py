"""A study on a real model pair as one TOML config: `load_study`, `run_study`, `plan_study`."""

from tooldiff.study.config import StudyConfig, load_study
from tooldiff.study.plan import Plan, plan_study
from tooldiff.study.run import run_study

__all__ = ["Plan", "StudyConfig", "load_study", "plan_study", "run_study"]
