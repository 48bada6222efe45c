"""Evaluation and training loops."""

from .config import TrainConfig, recipe_defaults
from .evaluate import EvalResult, evaluate, validate
from .train import train

__all__ = ["evaluate", "validate", "EvalResult", "train", "TrainConfig", "recipe_defaults"]
